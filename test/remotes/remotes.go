// Package remotes serves, on loopback, what Tekton's resolvers fetch from:
// git repositories (on disk, and through git daemon), an OCI registry
// holding Tekton bundles, http servers and a stand-in of Artifact Hub's
// API, so that tests of remote resolution, local and on the cluster, reach
// nothing but this machine.
package remotes

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	tektontest "github.com/tektoncd/pipeline/test"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/e7763abc/pod-runner/internal/testenv"
)

// Repo is a git repository on disk with one commit on branch main.
type Repo struct {
	// Dir is the repository's work tree.
	Dir string
	// Commit is main's commit.
	Commit string
}

// FileURL is the repository's file:// URL.
func (r Repo) FileURL() string { return "file://" + r.Dir }

// GitRepo is a repository holding files (path → content) on main.
func GitRepo(t testing.TB, files map[string]string) Repo {
	t.Helper()
	testenv.Require(t, "git", testenv.Command("git", "make deps installs git"))
	dir := filepath.Join(t.TempDir(), "repo")
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	Git(t, dir, "init", "-q", "-b", "main")
	Git(t, dir, "add", ".")
	Git(t, dir, "commit", "-q", "--allow-empty", "-m", "files")
	return Repo{Dir: dir, Commit: Git(t, dir, "rev-parse", "HEAD")}
}

// Git runs git in dir, as a committer of its own, and returns its output.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// GitDaemon serves the repository over git:// on loopback until the test
// ends (git daemon, every repository under its parent exported) and
// returns its URL: Tekton's git resolver refuses file:// URLs, as a
// cluster's resolvers must.
func GitDaemon(t testing.TB, r Repo) string {
	t.Helper()
	base := filepath.Dir(r.Dir)
	port := FreePort(t)
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1",
		fmt.Sprintf("--port=%d", port), "--base-path="+base, base)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("git daemon: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	go func() { // its messages go to the test's log
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			t.Log("git daemon: " + s.Text())
		}
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	url := "git://" + addr + "/" + filepath.Base(r.Dir)
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, err := exec.Command("git", "ls-remote", url).CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("git daemon on %s: %v: %s", addr, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return url
}

// Registry is an OCI registry on loopback (go-containerregistry's) until
// the test ends; its host:port.
func Registry(t testing.TB) string {
	t.Helper()
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	return strings.TrimPrefix(reg.URL, "http://")
}

// PushBundle pushes objects as one Tekton bundle (Tekton's own test
// helper: the format and annotations tkn bundle push writes) to ref, on a
// registry such as Registry's.
func PushBundle(t testing.TB, ref string, objs ...runtime.Object) {
	t.Helper()
	if _, err := tektontest.CreateImage(ref, objs...); err != nil {
		t.Fatalf("push bundle %s: %v", ref, err)
	}
}

// Serve is an http server on loopback answering every request with body,
// until the test ends; its URL.
func Serve(t testing.TB, body string) string {
	t.Helper()
	return ServeHandler(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, body)
	}))
}

// ServeHandler is an http server on loopback until the test ends; its URL.
func ServeHandler(t testing.TB, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

// ArtifactHubPackage is where Artifact Hub's API has a catalog Task's
// package, as the hub resolver asks it.
func ArtifactHubPackage(catalog, name string) string {
	return "/api/v1/packages/tekton-task/" + catalog + "/" + name
}

// ArtifactHub stands in for Artifact Hub's API as the hub resolver asks
// it: the versions of one Task package of the tekton-catalog-tasks
// catalog, then one version's manifest. Its URL, for ARTIFACT_HUB_API.
func ArtifactHub(t testing.TB, name, version, manifest string) string {
	t.Helper()
	pkg := ArtifactHubPackage("tekton-catalog-tasks", name)
	return ServeHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case pkg:
			out, _ := json.Marshal(map[string]any{"available_versions": []map[string]string{{"version": "0.0.1"}, {"version": version}}})
			w.Write(out)
		case pkg + "/" + version:
			out, _ := json.Marshal(map[string]any{"data": map[string]string{"manifestRaw": manifest}})
			w.Write(out)
		default:
			http.NotFound(w, r)
		}
	}))
}

// FreePort is a loopback port nothing listens on (at the time of asking).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ClosedAddr is a loopback host:port nothing listens on.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}
