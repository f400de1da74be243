package stepexec

import (
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
)

func TestMergeEnv(t *testing.T) {
	got := MergeEnv([]string{"PATH=/bin", "A=1", "B=2"}, []string{"B=3", "C=4", "A=5"})
	if want := []string{"PATH=/bin", "A=5", "B=3", "C=4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("MergeEnv = %q, want %q", got, want)
	}
	if v, ok := LookupEnv([]string{"A=1", "A=2"}, "A"); !ok || v != "2" {
		t.Errorf("LookupEnv = %q, %v: want the last entry", v, ok)
	}
	if _, ok := LookupEnv([]string{"AB=1"}, "A"); ok {
		t.Error("LookupEnv matched a prefix")
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"tool": 0o755, "data": 0o644} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, path, dir, want string
		wantErr               bool
	}{
		{"tool", bin, "", filepath.Join(bin, "tool"), false},
		{"tool", "bin", dir, filepath.Join(dir, "bin", "tool"), false}, // relative PATH entry
		{"bin/tool", "", dir, filepath.Join(dir, "bin", "tool"), false},
		{"data", bin, "", "", true}, // not executable
		{"bin", dir, "", "", true},  // a directory
		{"missing", bin, "", "", true},
	}
	for _, tt := range tests {
		got, err := LookPath(tt.name, tt.path, tt.dir)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("LookPath(%q, %q, %q) = %q, %v; want %q (error %v)", tt.name, tt.path, tt.dir, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSignalName(t *testing.T) {
	if got := SignalName(syscall.SIGKILL); got != "SIGKILL" {
		t.Errorf("SignalName(SIGKILL) = %q", got)
	}
	if got := SignalName(syscall.Signal(40)); got != "signal 40" {
		t.Errorf("SignalName(40) = %q", got)
	}
}

func TestOpenOutput(t *testing.T) {
	if f, err := OpenOutput("", t.TempDir()); f != nil || err != nil {
		t.Errorf("no path: %v, %v", f, err)
	}
	dir := t.TempDir()
	for _, line := range []string{"one\n", "two\n"} {
		f, err := OpenOutput("logs/out.txt", dir) // relative, parents made, appended
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(line)
		f.Close()
	}
	if b, err := os.ReadFile(filepath.Join(dir, "logs", "out.txt")); err != nil || string(b) != "one\ntwo\n" {
		t.Errorf("file = %q, %v", b, err)
	}
}
