package results

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "r"), []byte("v\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := ReadFile(dir, "r"); got != "v\n" || !ok || err != nil {
		t.Errorf("ReadFile(r) = %q, %v, %v", got, ok, err)
	}
	if _, ok, err := ReadFile(dir, "absent"); ok || err != nil {
		t.Errorf("ReadFile(absent) = %v, %v: want not ok, no error", ok, err)
	}
	for _, bad := range []string{"", ".", "..", "../r", "a/b"} {
		if _, _, err := ReadFile(dir, bad); err == nil {
			t.Errorf("ReadFile(%q) succeeded", bad)
		}
	}
}
