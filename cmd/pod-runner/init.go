package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/e7763abc/pod-runner/internal/podlayout"
)

func init() { commands["init"] = initMain }

// initMain is `pod-runner init [--mkdir DIR]... BINDIR`, the init
// container: it installs this binary as BINDIR/pod-runner for the pod's
// other containers, and makes each --mkdir directory (the tasks' results and
// steps directories in the state volume, which step containers mount with a
// subPath) writable by any user, before any of them starts.
func initMain(args []string) int {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	var dirs []string
	fs.Func("mkdir", "make this directory, mode 0777 (repeatable)", func(d string) error {
		dirs = append(dirs, d)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: pod-runner init [--mkdir DIR]... BINDIR (the pod's bin volume, e.g. %s)\n", podlayout.BinDir)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	for _, d := range dirs {
		if err := mkdirAll(d); err != nil {
			fmt.Fprintf(os.Stderr, "pod-runner init: %v\n", err)
			return 1
		}
	}
	if err := install(fs.Arg(0)); err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner init: %v\n", err)
		return 1
	}
	return 0
}

// mkdirAll makes dir with mode 0777 whatever the umask: a step's image may
// run as any user.
func mkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	// An emptyDir's own directory already is 0777, and a container run as
	// another user than root may not chmod it.
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm() == 0o777 {
		return nil
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	return nil
}

// install copies the step binary to dir/pod-runner, mode 0755, through a
// temporary file and a rename: a container never sees half a binary. The
// step binary is pod-runner-step beside this one (built -tags steponly:
// `step` and `init` only, so that every step container's process links
// neither the supervisor nor its CEL evaluator), or this binary when there
// is none.
func install(dir string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	if step := self + "-step"; fileExists(step) {
		self = step
	}
	src, err := os.Open(self)
	if err != nil {
		return fmt.Errorf("read own executable: %w", err)
	}
	defer src.Close()
	tmp, err := os.CreateTemp(dir, ".pod-runner-*")
	if err != nil {
		return fmt.Errorf("install into %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return fmt.Errorf("copy to %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	dst := filepath.Join(dir, filepath.Base(podlayout.Binary))
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("install %s: %w", dst, err)
	}
	return nil
}

func fileExists(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular()
}
