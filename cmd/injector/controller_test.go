package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestControllerUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown flag", []string{"--no-such-flag"}, 2, "unknown flag"},
		{"bad entrypoint", []string{"--entrypoint", "busybox"}, 2, "--entrypoint"},
		{"missing kubeconfig", []string{"--kubeconfig", filepath.Join(t.TempDir(), "none")}, 2, "--kubeconfig"},
		{"help", []string{"--help"}, 0, "--namespace"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := controllerMain(tc.args, &stderr); code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.msg) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tc.msg)
			}
		})
	}
}
