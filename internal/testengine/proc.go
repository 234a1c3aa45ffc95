package testengine

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a process as /proc shows it; its start time tells it from a later
// process given the same pid.
type proc struct {
	pid   int
	start string // jiffies after boot
}

// stat reads the state, parent and start time of a process from
// /proc/<pid>/stat.
func stat(pid int) (state byte, ppid int, start string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, "", err
	}
	// The command's name, in parentheses, may hold spaces and parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 20 {
		return 0, 0, "", fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, f[19], err
}

// running says whether p still runs: neither gone, nor a zombie, nor
// replaced by another process of the same pid.
func (p proc) running() bool {
	state, _, start, err := stat(p.pid)
	return err == nil && start == p.start && state != 'Z' && state != 'X'
}

// processesOf lists the running processes of the daemon in root: those
// whose command line mentions a path below root or, as an argument of its
// own, root's base name, the daemon's containerd namespace (dockerd, its
// containerd, the shims), and all their descendants (the containers'
// processes).
func processesOf(root string) ([]proc, error) {
	below, ns := []byte(root+"/"), []byte(filepath.Base(root))
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	type info struct {
		proc
		ppid int
	}
	var all []info
	var found []proc
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		state, ppid, start, err := stat(pid)
		if err != nil || state == 'Z' || state == 'X' {
			continue // gone since the listing, or dead
		}
		p := info{proc{pid, start}, ppid}
		all = append(all, p)
		cmd, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err == nil && (bytes.Contains(cmd, below) || slices.ContainsFunc(bytes.Split(cmd, []byte{0}),
			func(arg []byte) bool { return bytes.Equal(arg, ns) })) {
			found = append(found, p.proc)
		}
	}
	// Descendants, level by level, until a level adds none.
	for added := len(found); added > 0; {
		from := found[len(found)-added:]
		added = 0
		for _, p := range all {
			if !slices.Contains(found, p.proc) && slices.ContainsFunc(from, func(q proc) bool { return q.pid == p.ppid }) {
				found = append(found, p.proc)
				added++
			}
		}
	}
	return found, nil
}

// killAll SIGKILLs every process of the daemon in root (processesOf),
// waits until all of them are gone, for at most 20 s, and removes the
// sockets of the shims among them. All are listed before any is killed: a
// container's process whose shim died first would no longer descend from
// anything of the daemon's.
func killAll(root string) error {
	var killed []proc
	var sockets []string
	for deadline := time.Now().Add(deathLimit); ; time.Sleep(20 * time.Millisecond) {
		ps, err := processesOf(root)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if s := shimSocket(p.pid); s != "" {
				sockets = append(sockets, s)
			}
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
		killed = append(killed, ps...)
		killed = slices.DeleteFunc(killed, func(p proc) bool { return !p.running() })
		if len(ps) == 0 && len(killed) == 0 {
			for _, s := range sockets {
				if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of the daemon in %s still run %v after SIGKILL", killed, root, deathLimit)
		}
	}
}

// shimSocket is the socket a containerd shim v2 process listens on, which a
// shim killed leaves behind, outside the daemon's directory; "" for any
// other process. containerd names it after the hash of its own address, the
// namespace and the container's ID, which the shim's arguments hold.
func shimSocket(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	args := strings.Split(string(b), "\x00")
	if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
		return ""
	}
	flag := func(name string) string {
		if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
			return args[i+1]
		}
		return ""
	}
	addr, ns, id := flag("-address"), flag("-namespace"), flag("-id")
	if addr == "" || ns == "" || id == "" {
		return ""
	}
	return fmt.Sprintf("/run/containerd/s/%x", sha256.Sum256([]byte(filepath.Join(addr, ns, id))))
}

// mountsUnder lists the mount points at or below dir in this process's
// mount namespace, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		m := unescapeMountinfo(fields[4])
		if m == dir || strings.HasPrefix(m, dir+"/") {
			ms = append(ms, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// A mount point's path is longer than those of the mounts it lies on.
	slices.SortStableFunc(ms, func(a, b string) int { return len(b) - len(a) })
	return ms, nil
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space,
// \011, \012, \134) in a path.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountUnder detaches every mount at or below dir, deepest first, as a
// daemon killed mid-job leaves its containers' root filesystems, shm and
// network namespaces mounted. Mounts stacked on one point take a round
// each.
func unmountUnder(dir string) error {
	dir = filepath.Clean(dir)
	for round := 0; ; round++ {
		ms, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		if len(ms) == 0 {
			return nil
		}
		if round == 10 {
			return fmt.Errorf("still mounted after %d rounds of unmounting: %v", round, ms)
		}
		for _, m := range ms {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL {
				return fmt.Errorf("unmount %s: %w", m, err)
			}
		}
	}
}
