package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"kozmic/store"
)

// runBackup is `kozmic backup FILE [-force] [flags]`: it writes a
// consistent copy of the database to FILE, checked with PRAGMA
// integrity_check, while the server may be running. It opens the database
// read-only, so it never migrates or changes it and never waits for the
// server's write lock. FILE appears only once complete: the copy is made
// under a temporary name beside it and then renamed. Exit 2 for a bad
// command line or configuration, a database that does not exist, a wrong
// secret key, or an existing FILE without -force; 1 when copying or checking fails, leaving no file behind.
func runBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	const usage = "usage: kozmic backup FILE [-force] [flags]"
	n := len(args)
	args = slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "-force" || a == "--force" })
	force := len(args) < n
	if len(args) > 0 && slices.Contains([]string{"-h", "-help", "--help"}, args[0]) {
		fmt.Fprintln(stderr, usage)
		return exitOK
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	file, rest := args[0], args[1:]
	cfg, code, ok := loadConfig("backup", rest, getenv, stderr, usage)
	if !ok {
		return code
	}
	dbPath, err := existingDatabase(cfg.Database)
	if err != nil {
		fmt.Fprintf(stderr, "kozmic: %v\n", err)
		return exitUsage
	}
	if cfg.SecretKeyFile != "" {
		// Never generated: a new key could not be the database's.
		if _, err := cfg.loadKeyFile(false); err != nil {
			fmt.Fprintf(stderr, "kozmic: %v: the backup needs the database's key\n", err)
			return exitUsage
		}
	}
	path, err := filepath.Abs(file)
	if err != nil {
		fmt.Fprintf(stderr, "kozmic: backup file: %v\n", err)
		return exitUsage
	}
	if err := checkBackupTarget(path, force, cfg); err != nil {
		fmt.Fprintf(stderr, "kozmic: %v\n", err)
		return exitUsage
	}

	db, err := store.Open(ctx, cfg.Database, store.Options{SecretKey: cfg.SecretKey, ReadOnly: true})
	if errors.Is(err, store.ErrWrongKey) {
		fmt.Fprintf(stderr, "kozmic: KOZMIC_SECRET_KEY: %v\n", err)
		return exitUsage
	} else if err != nil {
		fmt.Fprintf(stderr, "kozmic: backup failed: %v\n", err)
		return exitFailed
	}
	defer db.Close()
	version, err := db.SchemaVersion(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "kozmic: backup failed: %v\n", err)
		return exitFailed
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		fmt.Fprintf(stderr, "kozmic: backup failed: %v\n", err)
		return exitFailed
	}
	tmp.Close()
	if err := db.Backup(ctx, tmp.Name()); err != nil { // removes the temporary file
		fmt.Fprintf(stderr, "kozmic: backup failed, nothing was written to %s: %v\n", path, err)
		return exitFailed
	}
	if err := placeBackup(tmp.Name(), path, force); errors.Is(err, fs.ErrExist) {
		fmt.Fprintf(stderr, "kozmic: %s exists; pass -force to replace it\n", path)
		return exitUsage
	} else if err != nil {
		fmt.Fprintf(stderr, "kozmic: backup failed, nothing was written to %s: %v\n", path, err)
		return exitFailed
	}
	fi, err := os.Stat(path)
	if err != nil {
		fmt.Fprintf(stderr, "kozmic: backup failed: %v\n", err)
		return exitFailed
	}
	key := "the same KOZMIC_SECRET_KEY"
	if cfg.SecretKeyFile != "" {
		key = "the key in " + cfg.SecretKeyFile
	}
	fmt.Fprintf(stdout, "wrote %s, a copy of %s (%d bytes, schema version %d, integrity checked); restoring it needs %s\n",
		path, dbPath, fi.Size(), version, key)
	return exitOK
}

// checkBackupTarget refuses a backup path that exists, unless force, and
// always one that is the database, its -wal or -shm, or its key file:
// replacing those would destroy what the backup is for.
func checkBackupTarget(path string, force bool, cfg Config) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		dir := filepath.Dir(path)
		if di, err := os.Stat(dir); err != nil || !di.IsDir() {
			return fmt.Errorf("%s is not a directory to write the backup in", dir)
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("backup file: %w", err)
	}
	for _, p := range []string{cfg.Database, cfg.Database + "-wal", cfg.Database + "-shm", cfg.SecretKeyFile} {
		if other, err := os.Stat(p); p != "" && err == nil && os.SameFile(fi, other) {
			return fmt.Errorf("%s is %s itself; write the backup elsewhere", path, p)
		}
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s exists and is not a regular file", path)
	}
	if !force {
		return fmt.Errorf("%s exists; pass -force to replace it", path)
	}
	return nil
}

// placeBackup gives the finished copy at tmp its name in one step, and
// syncs the directory so that the name survives a crash. With force it
// renames, replacing a file at path; without, it hard-links, which fails
// with fs.ErrExist if path appeared since it was checked (where hard links
// are not supported, it checks again and renames). tmp is gone either way.
func placeBackup(tmp, path string, force bool) error {
	var err error
	if force {
		err = os.Rename(tmp, path)
	} else if err = os.Link(tmp, path); err == nil || errors.Is(err, fs.ErrExist) {
		os.Remove(tmp)
	} else if _, serr := os.Lstat(path); serr == nil {
		err = fs.ErrExist
	} else {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
