package tektonlocal

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBuildFromEmptyOrPartialModuleCache builds Tekton's commands as Start
// does, with a module cache that starts empty and with one that holds only
// a module Tekton needs and this module itself does not (the one a new
// machine's build once failed on, asking the checksum database directly):
// go.sum must pin everything, so that the build needs only the module proxy.
// The build cache is the machine's, so only the downloads are new.
func TestBuildFromEmptyOrPartialModuleCache(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		prefill []string // modules downloaded into the fresh cache first
	}{
		{"empty", nil},
		{"partial", []string{"github.com/blang/semver/v4@v4.0.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			modcache := filepath.Join(t.TempDir(), "mod")
			env := append(BuildEnv(), "GOMODCACHE="+modcache)
			// The module cache's files are read-only: let go remove them.
			t.Cleanup(func() {
				c := exec.Command("go", "clean", "-modcache")
				c.Env = env
				if out, err := c.CombinedOutput(); err != nil {
					t.Errorf("go clean -modcache: %v: %s", err, out)
				}
			})
			for _, m := range tc.prefill {
				c := exec.Command("go", "mod", "download", m)
				c.Dir, c.Env = t.TempDir(), env
				if out, err := c.CombinedOutput(); err != nil {
					t.Fatalf("prefill %s: %v: %s", m, err, out)
				}
			}
			bin := filepath.Join(t.TempDir(), "bin")
			if err := build(root, bin, env); err != nil {
				t.Fatal(err)
			}
			for _, c := range commands {
				fi, err := os.Stat(filepath.Join(bin, c))
				if err != nil || fi.Mode()&0o111 == 0 {
					t.Errorf("%s: not built (%v)", c, err)
				}
			}
		})
	}
}
