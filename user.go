package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"golang.org/x/term"

	"kozmic/internal/password"
	"kozmic/store"
)

// runUser is `kozmic user add NAME [-admin]` and `kozmic user passwd NAME`:
// it makes a local account or sets its password, read from the terminal
// (asked twice) or as the first line of stdin, in the server's existing
// database, and says which database that was. Exit 2 for a bad command
// line, a database that does not exist, a bad password or an unknown/taken
// name; 1 when the database fails.
func runUser(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	const usage = "usage: kozmic user add NAME [-admin] [flags] | kozmic user passwd NAME [flags]"
	if len(args) < 2 || (args[0] != "add" && args[0] != "passwd") || strings.HasPrefix(args[1], "-") {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	sub, name, rest := args[0], args[1], args[2:]
	admin := false
	if sub == "add" {
		n := len(rest)
		rest = slices.DeleteFunc(rest, func(a string) bool { return a == "-admin" || a == "--admin" })
		admin = len(rest) < n
	}
	cfg, code, ok := loadConfig("user "+sub, rest, getenv, stderr, usage)
	if !ok {
		return code
	}
	dbPath, err := existingDatabase(cfg.Database)
	if err != nil {
		fmt.Fprintf(stderr, "kozmic: %v\n", err)
		return exitUsage
	}
	log := newLogger(cfg, stderr)
	db, code := openStore(ctx, cfg, log, stderr)
	if db == nil {
		return code
	}
	defer db.Close()

	var u store.User
	if sub == "passwd" {
		if u, err = db.UserByUsername(ctx, name); errors.Is(err, store.ErrNotFound) {
			fmt.Fprintf(stderr, "kozmic: there is no local user %q\n", name)
			return exitUsage
		} else if err != nil {
			log.Error("find user", "username", name, "err", err)
			return exitFailed
		}
	}
	pw, err := readPassword(stdin, stderr, name)
	if err != nil {
		fmt.Fprintf(stderr, "kozmic: %v\n", err)
		return exitUsage
	}
	hash, err := password.Hash(pw)
	if err != nil {
		fmt.Fprintf(stderr, "kozmic: %v\n", err)
		return exitUsage
	}
	if sub == "passwd" {
		err = db.SetPasswordHash(ctx, u.ID, hash)
	} else {
		_, err = db.CreateLocalUser(ctx, name, hash, admin)
	}
	var inv *store.InvalidError
	switch {
	case errors.As(err, &inv):
		fmt.Fprintf(stderr, "kozmic: %s\n", inv.Msg)
		return exitUsage
	case errors.Is(err, store.ErrConflict):
		fmt.Fprintf(stderr, "kozmic: the username %q is taken\n", name)
		return exitUsage
	case err != nil:
		log.Error("save user", "username", name, "err", err)
		return exitFailed
	}
	if sub == "passwd" {
		fmt.Fprintf(stdout, "password of %s changed in %s\n", name, dbPath)
	} else {
		fmt.Fprintf(stdout, "user %s added to %s\n", name, dbPath)
	}
	return exitOK
}

// readPassword asks for a password twice on a terminal, or reads the first
// line of stdin when it is not one (for scripts: echo pw | kozmic user …).
func readPassword(stdin io.Reader, prompt io.Writer, name string) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(prompt, "Password for %s: ", name)
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(prompt, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password on stdin")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// ensureAdmin makes the "admin" user at the first start without GitHub:
// with KOZMIC_ADMIN_PASSWORD, or a generated password written once to the
// log. An existing admin is left as it is.
func ensureAdmin(ctx context.Context, cfg Config, db *store.DB, log *slog.Logger) error {
	if _, err := db.UserByUsername(ctx, "admin"); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	pw, generated := cfg.AdminPassword, false
	if pw == "" {
		pw, generated = password.Generate(), true
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return err
	}
	if _, err := db.CreateLocalUser(ctx, "admin", hash, true); err != nil {
		return fmt.Errorf("create admin: %w", err)
	}
	if generated {
		log.Warn("created the user admin with a generated password; it is not shown again (change it with: kozmic user passwd admin)",
			"username", "admin", "password", pw)
	} else {
		log.Info("created the user admin with the password from KOZMIC_ADMIN_PASSWORD", "username", "admin")
	}
	return nil
}
