package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/e7763abc/pod-runner/internal/podlayout"
)

func init() { commands["init"] = initMain }

// initMain is `pod-runner init DIR`, the init container: it installs this
// binary as DIR/pod-runner for the pod's other containers.
func initMain(args []string) int {
	if len(args) != 1 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(os.Stderr, "usage: pod-runner init DIR (the pod's bin volume, e.g. %s)\n", podlayout.BinDir)
		if len(args) == 1 {
			return 0
		}
		return 2
	}
	if err := install(args[0]); err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner init: %v\n", err)
		return 1
	}
	return 0
}

// install copies the running executable to dir/pod-runner, mode 0755,
// through a temporary file and a rename: a container never sees half a
// binary.
func install(dir string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
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
