// Package testbin builds this module's commands, once per test binary, for
// the tests that run them as a user would.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

var (
	mu    sync.Mutex
	dir   string
	built = map[string]string{}
)

// Build builds pkg (an import path, or a .go file) with the given build tags,
// static (CGO_ENABLED=0), and returns the binary's path; later calls with the
// same arguments return the same binary.
func Build(pkg string, tags ...string) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	key := pkg + " " + strings.Join(tags, ",")
	if bin, ok := built[key]; ok {
		return bin, nil
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "pod-runner-testbin-")
		if err != nil {
			return "", err
		}
		dir = d
	}
	name := strings.TrimSuffix(path.Base(pkg), ".go")
	if len(tags) > 0 {
		name += "-" + strings.Join(tags, "-")
	}
	bin := filepath.Join(dir, name)
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(append(args, pkg), " "), err, out)
	}
	built[key] = bin
	return bin, nil
}

// Cleanup removes every binary Build made; TestMain calls it after the tests.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
	dir, built = "", map[string]string{}
}
