package credsinit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/e7763abc/pod-runner/internal/mountns"
	"github.com/e7763abc/pod-runner/internal/testenv"
)

// helperEnv makes the test binary write the credentials its args name
// (after "--"), where a step would: Tekton's paths are fixed, so the test
// runs it in a mount namespace whose /tekton/creds-secrets and
// /tekton/creds are the test's directories.
const helperEnv = "CREDSINIT_TEST_HELPER"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == mountns.Command {
		err := mountns.Main(os.Args[2:])
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(126)
	}
	if os.Getenv(helperEnv) == "1" {
		if err := Write(os.Args[1:], Dir, "/home/step"); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestWrite: a step's HOME gets Tekton's files for git over basic auth and
// ssh and for docker, copies of what Tekton's writers put in /tekton/creds
// (directories 0700, files 0600), which name that directory.
func TestWrite(t *testing.T) {
	testenv.Require(t, "root", testenv.Root("Tekton's writers read /tekton/creds-secrets: the test mounts it in a mount namespace"))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	write := func(path, data string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	secrets := filepath.Join(tmp, "secrets")
	write(filepath.Join(secrets, "git-basic", "username"), "user")
	write(filepath.Join(secrets, "git-basic", "password"), "pass")
	write(filepath.Join(secrets, "git-ssh", "ssh-privatekey"), "KEY")
	write(filepath.Join(secrets, "git-ssh", "known_hosts"), "github.com ssh-rsa AAAA")
	write(filepath.Join(secrets, "docker-basic", "username"), "duser")
	write(filepath.Join(secrets, "docker-basic", "password"), "dpass")
	home, creds, root, scratch := filepath.Join(tmp, "home"), filepath.Join(tmp, "creds"), filepath.Join(tmp, "root"), filepath.Join(tmp, "scratch")
	for _, d := range []string{home, creds, root, scratch} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	spec := mountns.Spec{Root: root, Scratch: scratch, Binds: []mountns.Bind{
		{Src: secrets, Dst: "/tekton/creds-secrets", ReadOnly: true},
		{Src: creds, Dst: Dir},
		{Src: home, Dst: "/home/step"},
	}}
	argv, err := mountns.Args(self, spec, []string{self, "basic-git=git-basic=https://a.example", "ssh-git=git-ssh=github.com", "basic-docker=docker-basic=https://index.docker.io/v1/"})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{helperEnv + "=1", "PATH=/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for name, want := range map[string]string{
		".git-credentials":    "https://user:pass@a.example",
		".gitconfig":          `[credential "https://a.example"]`,
		".ssh/id_git-ssh":     "KEY",
		".ssh/known_hosts":    "github.com ssh-rsa AAAA",
		".ssh/config":         "IdentityFile /tekton/creds/.ssh/id_git-ssh",
		".docker/config.json": `"https://index.docker.io/v1/"`,
	} {
		got, err := os.ReadFile(filepath.Join(home, name))
		if err != nil || !strings.Contains(string(got), want) {
			t.Errorf("~/%s: %q, %v; want it to hold %q", name, got, err, want)
			continue
		}
		written, err := os.ReadFile(filepath.Join(creds, name))
		if err != nil || string(written) != string(got) {
			t.Errorf("~/%s is not a copy of /tekton/creds/%s (%v)", name, name, err)
		}
		if info, _ := os.Stat(filepath.Join(home, name)); info.Mode().Perm() != 0o600 {
			t.Errorf("~/%s has mode %v, want 0600", name, info.Mode().Perm())
		}
	}
	if info, err := os.Stat(filepath.Join(home, ".ssh")); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("~/.ssh: %v, %v; want a directory of mode 0700", info, err)
	}
}

// TestWriteNothing: no credentials, nothing written.
func TestWriteNothing(t *testing.T) {
	dir := t.TempDir()
	if err := Write(nil, filepath.Join(dir, "creds"), dir); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("wrote %d entries with no credentials", len(entries))
	}
}
