package store

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// findLockHolder scans a /proc/locks-format file for a lock on path's inode
// and describes the owning process from procDir/<pid>/cmdline. It is a
// courtesy for the "store is busy" message, so every failure yields "".
func findLockHolder(path, locksFile, procDir string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	f, err := os.Open(locksFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	// Lines look like: "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF",
	// the device as hex major:minor and the inode in decimal. Blocked
	// waiters ("1: -> FLOCK …") are not holders.
	want := strconv.FormatUint(st.Ino, 10)
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^uint64(0xfff)
	minor := dev&0xff | (dev>>12)&^uint64(0xff)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] == "->" || fields[1] != "FLOCK" {
			continue
		}
		id := strings.Split(fields[5], ":")
		if len(id) != 3 || id[2] != want || !hexIs(id[0], major) || !hexIs(id[1], minor) {
			continue
		}
		pid := fields[4]
		if pid == strconv.Itoa(os.Getpid()) {
			return fmt.Sprintf("pid %s, this process", pid)
		}
		cmd, err := os.ReadFile(filepath.Join(procDir, pid, "cmdline"))
		if err != nil || len(cmd) == 0 {
			return "pid " + pid
		}
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		args[0] = filepath.Base(args[0])
		if len(args) > 3 {
			args = args[:3]
		}
		return fmt.Sprintf("pid %s: %s", pid, strings.Join(args, " "))
	}
	return ""
}

func hexIs(s string, n uint64) bool {
	v, err := strconv.ParseUint(s, 16, 64)
	return err == nil && v == n
}
