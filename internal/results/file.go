package results

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ReadFile reads the result file NAME in dir (a results directory, or a
// step's results directory), as a launcher finds it after the steps ran; ok
// is false when the step did not write it. A name that is not a plain file
// name is an error: it could read outside dir.
func ReadFile(dir, name string) (content string, ok bool, err error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return "", false, fmt.Errorf("result name %q is not a file name", name)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read result: %w", err)
	}
	return string(b), true, nil
}
