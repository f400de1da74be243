package mountns

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/e7763abc/pod-runner/internal/testenv"
)

// TestMain lets the test binary serve as the pod-runner binary that runs
// Command.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Command {
		err := Main(os.Args[2:])
		fmt.Fprintln(os.Stderr, err)
		os.Exit(126)
	}
	os.Exit(m.Run())
}

// TestView: a step run through Command sees its binds at their paths
// (read-only ones unwritable, writes landing in the host directory), mount
// points made under a host directory without changing the host, hidden
// directories empty, and its working directory made.
func TestView(t *testing.T) {
	testenv.Require(t, "root", testenv.Root("mount namespaces need root"))
	if !Available() {
		t.Fatal("root without CAP_SYS_ADMIN: cannot make mount namespaces")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	dir := func(name string) string {
		d := filepath.Join(tmp, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	results, config, hidden, work := dir("results"), dir("config"), dir("state"), dir("work")
	if err := os.WriteFile(filepath.Join(config, "key"), []byte("value"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hidden, "secret"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A mount point below a host directory that lacks it.
	underEtc := "/etc/pod-runner-test-" + filepath.Base(tmp) + "/config"
	spec := Spec{
		Root: dir("root"), Scratch: dir("scratch"),
		Binds: []Bind{
			{Src: results, Dst: "/tekton/results"},
			{Src: work, Dst: "/workspace"},
			{Src: config, Dst: "/config", ReadOnly: true},
			{Src: config, Dst: underEtc, ReadOnly: true},
		},
		Hide: []string{hidden},
		Dir:  "/workspace/src",
	}
	for _, c := range []struct {
		script string
		fails  bool
	}{
		{"echo -n ok > /tekton/results/r", false},
		{"test \"$(cat /config/key)\" = value", false},
		{"echo x > /config/other", true},
		{"test \"$(cat " + underEtc + "/key)\" = value", false},
		{"test \"$(pwd)\" = /workspace/src && touch here", false},
		{"test -e " + hidden + "/secret", true},
		{"touch " + hidden + "/new", true},
		{"test -e /etc/passwd && test -d /usr/bin", false},
	} {
		argv, err := Args(self, spec, []string{"/bin/sh", "-c", c.script})
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		if (err != nil) != c.fails {
			t.Errorf("%q: %v %s; want it to fail: %v", c.script, err, out, c.fails)
		}
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 126 {
			t.Errorf("%q: the view was not made: %s", c.script, out)
		}
	}
	if got, err := os.ReadFile(filepath.Join(results, "r")); err != nil || string(got) != "ok" {
		t.Errorf("the result written in the view reads %q, %v on the host", got, err)
	}
	if _, err := os.Stat(filepath.Join(work, "src", "here")); err != nil {
		t.Errorf("the working dir made in the view is not in the bound directory: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(underEtc)); err == nil {
		t.Errorf("%s was made on the host", filepath.Dir(underEtc))
	}
	if entries, _ := os.ReadDir(spec.Root); len(entries) > 0 {
		t.Errorf("the root's mount point holds %d entries on the host: the view leaked", len(entries))
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), spec.Root) {
		t.Error("the host's mount table shows the view's root")
	}
}
