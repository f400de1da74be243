package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	events := `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA (0.00s)\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestB/sub","Output":"=== RUN   TestB/sub\n"}
{"Action":"output","Package":"p","Test":"TestB/sub","Output":"    --- SKIP: TestB/sub (0.00s)\n"}
{"Action":"output","Package":"p","Test":"TestB/sub","Output":"        b_test.go:12: needs podman: podman is not on PATH\n"}
{"Action":"skip","Package":"p","Test":"TestB/sub"}
{"Action":"output","Package":"q","Test":"TestC","Output":"--- FAIL: TestC (0.00s)\n"}
{"Action":"fail","Package":"q","Test":"TestC"}
# github.com/x/y [build failed]
{"Action":"skip","Package":"r"}
`
	s := &summary{output: map[string][]string{}}
	if err := s.read(strings.NewReader(events)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s.print(&out)
	want := "skipped (1): p TestB/sub (needs podman: podman is not on PATH)\ntests: 1 passed, 1 failed, 1 skipped\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	(&summary{}).print(&out)
	if got := out.String(); got != "skipped: none\ntests: 0 passed, 0 failed, 0 skipped\n" {
		t.Errorf("nothing run: %q", got)
	}
}
