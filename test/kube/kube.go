// Package kube is what the end-to-end tests on a real cluster share: kubectl, a namespace per test, the controller on the host, polling.
package kube

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/test/testbin"
)

// Kubectl runs kubectl with args (and stdin, unless empty) against
// $KUBECONFIG and returns its stdout; a failure, or no answer within 2
// minutes, fails the test with kubectl's stderr.
func Kubectl(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// Namespace creates a namespace named prefix-<random hex> for the test and
// returns once its default ServiceAccount exists (Pods need it). The end of
// the test deletes it, without waiting, unless POD_RUNNER_KEEP is set (to
// look at what a failed test left).
func Namespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := fmt.Sprintf("%s-%x", prefix, time.Now().UnixNano()&0xffffff)
	Kubectl(t, "", "create", "namespace", ns)
	t.Cleanup(func() {
		if os.Getenv("POD_RUNNER_KEEP") == "" {
			Kubectl(t, "", "delete", "namespace", ns, "--wait=false", "--ignore-not-found")
		}
	})
	// The service account controller creates "default" shortly after.
	for deadline := time.Now().Add(30 * time.Second); exec.Command("kubectl", "-n", ns, "get", "serviceaccount", "default").Run() != nil; {
		if time.Now().After(deadline) {
			t.Fatalf("no default service account in %s", ns)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return ns
}

// StartController builds this module's injector (once per test binary) and
// runs StartControllerBinary with it.
func StartController(t testing.TB, namespace string) (stop func()) {
	t.Helper()
	bin, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/injector")
	if err != nil {
		t.Fatal(err)
	}
	return StartControllerBinary(t, bin, namespace)
}

// StartControllerBinary runs `bin controller` on the host for the namespace
// with the local image localhost/pod-runner:dev, offline. The returned func
// stops it (SIGINT, then SIGKILL after 10 s), as does the end of the test;
// its log is printed if the test failed by then.
func StartControllerBinary(t testing.TB, bin, namespace string) (stop func()) {
	t.Helper()
	stop, _ = StartControllerLogged(t, bin, namespace)
	return stop
}

// StartControllerLogged is StartControllerBinary that also gives the path
// of the controller's log, complete once stop has returned.
func StartControllerLogged(t testing.TB, bin, namespace string) (stop func(), logPath string) {
	t.Helper()
	c := StartControllerProcess(t, bin, namespace)
	return c.Stop, c.Log
}

// Controller is `injector controller` running on the host, for the tests
// that stop or kill it.
type Controller struct {
	// Log is the path of its log, complete once it has stopped.
	Log string

	t         testing.TB
	namespace string
	cmd       *exec.Cmd
	logFile   *os.File
	done      chan struct{}
	stopped   bool
}

// StartControllerProcess starts bin's controller for the namespace, with
// more flags if given; the end of the test stops it.
func StartControllerProcess(t testing.TB, bin, namespace string, flags ...string) *Controller {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "controller.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"controller", "--kubeconfig", os.Getenv("KUBECONFIG"), "--namespace", namespace,
		"--image", "localhost/pod-runner:dev", "--offline"}, flags...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s controller: %v", bin, err)
	}
	c := &Controller{Log: logPath, t: t, namespace: namespace, cmd: cmd, logFile: logFile, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	t.Cleanup(c.Stop)
	return c
}

// Pid is the controller's process ID.
func (c *Controller) Pid() int { return c.cmd.Process.Pid }

// Stop stops the controller (SIGINT, then SIGKILL after 10 s); its log is
// printed if the test failed by then.
func (c *Controller) Stop() {
	if c.stopped {
		return
	}
	_ = c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.finish()
}

// Kill SIGKILLs the controller: no chance to finish anything.
func (c *Controller) Kill() {
	if c.stopped {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	c.finish()
}

func (c *Controller) finish() {
	c.stopped = true
	c.logFile.Close()
	if c.t.Failed() {
		b, _ := os.ReadFile(c.Log)
		c.t.Logf("controller log (namespace %s):\n%s", c.namespace, b)
	}
}

// WaitFor polls ok every 250 ms until it holds, failing the test with what
// it waited for after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// State is local-k8s's state directory (the Makefile's K8S_STATE, by
// default ~/.cache/local-k8s), where its kubeconfig and containerd socket
// live.
func State() string {
	if s := os.Getenv("K8S_STATE"); s != "" {
		return s
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "local-k8s")
}

// InstallTektonCRDs applies the pinned Tekton module's CRDs (TektonCRDs;
// no webhook: v1 objects are stored as they are).
func InstallTektonCRDs(t testing.TB) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tektoncd/pipeline").Output()
	if err != nil {
		t.Fatalf("find the Tekton module: %v", err)
	}
	crds, err := TektonCRDs(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	Kubectl(t, string(crds), "apply", "--server-side", "--force-conflicts", "-f", "-")
	WaitEstablished(t, "crd/pipelineruns.tekton.dev", "crd/taskruns.tekton.dev", "crd/pipelines.tekton.dev", "crd/tasks.tekton.dev")
}

// WaitEstablished waits for the CRDs to be established. kubectl wait
// fails at once, rather than waiting, on a CRD just created whose status
// has no conditions yet (a fresh cluster): it is asked again.
func WaitEstablished(t testing.TB, crds ...string) {
	t.Helper()
	if err := Established(crds...); err != nil {
		t.Fatal(err)
	}
}

// Established is WaitEstablished's wait, for callers with no testing.TB.
func Established(crds ...string) error {
	var out []byte
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		out, err = exec.Command("kubectl", append([]string{"wait", "--for", "condition=established", "--timeout=60s"}, crds...)...).CombinedOutput()
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("kubectl wait for %v to be established: %w: %s", crds, err, out)
}

// resolutionStatusRequired is what Tekton v1.15.1's ResolutionRequest CRD
// requires of a request's status: data, a refSource and a source, the
// fields its Go type has no omitempty on. A request has none of them until
// a resolver answers, and a failed one never has a refSource: the API
// server refuses the status writes that mark a request failed, by its
// resolver (framework Reconciler.MarkFailed: "status.refSource: Required
// value") or, after default-maximum-resolution-timeout, by Tekton's
// controller ("status.data: Required value"). A resolution that fails or
// is never answered is then never reported, and its run waits for its own
// timeout, under Tekton's controller as under ours. TektonCRDs drops the
// list: what the types mean, and what a release must fix.
var resolutionStatusRequired = regexp.MustCompile(`(?m)^\s+required:\n\s+- data\n\s+- refSource\n(\s+- source\n)?`)

// TektonCRDs are the CRDs of the Tekton module in moduleDir (config/300-crds)
// as one YAML stream, the ResolutionRequest's status fixed
// (resolutionStatusRequired).
func TektonCRDs(moduleDir string) ([]byte, error) {
	files, err := filepath.Glob(filepath.Join(moduleDir, "config", "300-crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no CRDs in %s/config/300-crds: %v", moduleDir, err)
	}
	sort.Strings(files)
	var out bytes.Buffer
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("tekton CRDs: %w", err)
		}
		if filepath.Base(f) == "300-resolutionrequest.yaml" {
			if n := len(resolutionStatusRequired.FindAll(b, -1)); n != 2 {
				return nil, fmt.Errorf("%s: the status of %d versions requires refSource, want 2 (v1alpha1, v1beta1): has Tekton fixed its CRD? then drop resolutionStatusRequired", f, n)
			}
			b = resolutionStatusRequired.ReplaceAll(b, nil)
		}
		out.WriteString("---\n")
		out.Write(b)
		out.WriteString("\n")
	}
	return out.Bytes(), nil
}
