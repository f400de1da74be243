package testenv

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestInCI(t *testing.T) {
	for v, want := range map[string]bool{"": false, "false": false, "0": false, "FALSE": false, "true": true, "1": true, "yes": true} {
		t.Setenv("CI", v)
		if got := InCI(); got != want {
			t.Errorf("CI=%q: InCI() = %v, want %v", v, got, want)
		}
	}
}

// recorder is a testing.TB that records a skip or a failure instead of
// ending the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Skipf(format string, a ...any)  { r.skipped = fmt.Sprintf(format, a...) }
func (r *recorder) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }

// A missing capability skips on a laptop and fails in CI, each naming the
// capability and why; a present one does neither.
func TestRequire(t *testing.T) {
	errGadget := errors.New("no gadget here")
	for _, c := range []struct {
		ci              string
		err             error
		skipped, failed string
	}{
		{ci: "", err: errGadget, skipped: "needs a gadget: no gadget here"},
		{ci: "false", err: errGadget, skipped: "needs a gadget: no gadget here"},
		{ci: "true", err: errGadget, failed: "needs a gadget, which CI must provide: no gadget here"},
		{ci: "true"},
		{ci: ""},
	} {
		t.Setenv("CI", c.ci)
		r := &recorder{TB: t}
		Require(r, "a gadget", c.err)
		if r.skipped != c.skipped || r.failed != c.failed {
			t.Errorf("CI=%q err=%v: skipped %q failed %q, want %q and %q", c.ci, c.err, r.skipped, r.failed, c.skipped, c.failed)
		}
	}
}

func TestChecks(t *testing.T) {
	if err := Command("sh", ""); err != nil {
		t.Errorf("Command(sh): %v", err)
	}
	if err := Command("no-such-command-here", "apt-get install it"); err == nil || !strings.Contains(err.Error(), "apt-get install it") {
		t.Errorf("Command(missing): %v", err)
	}
	t.Setenv("TESTENV_SET", "x")
	if err := Env("TESTENV_SET", "make"); err != nil {
		t.Errorf("Env(set): %v", err)
	}
	if err := Env("TESTENV_UNSET_VARIABLE", "make e2e"); err == nil || !strings.Contains(err.Error(), "make e2e sets it") {
		t.Errorf("Env(unset): %v", err)
	}
}
