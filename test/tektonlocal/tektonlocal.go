// Package tektonlocal runs Tekton's own controller (the pinned release, one
// pod per task) on the host against the local cluster, for tests that
// compare pod-runner with it.
package tektonlocal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/test/kube"
)

// SystemNamespace holds Tekton's ConfigMaps, as in a real installation. It
// is left in place after a test: the next Start applies the config again.
const SystemNamespace = "tekton-pipelines"

// ShellImage is the busybox local-k8s builds: Tekton's shell image (the
// place-scripts init container) and a step image for Tekton's runs.
const ShellImage = "localhost/busybox:local"

// ports are the host ports the controller binds whatever its environment
// says (probes, metrics, profiling): one controller at a time.
var ports = []int{8080, 9090, 18008}

// Options changes how the controller runs.
type Options struct {
	// Namespace limits Tekton's informers to one namespace (its -namespace
	// flag); empty watches all namespaces and reconciles every PipelineRun
	// without spec.managedBy anywhere in the cluster.
	Namespace string
	// FeatureFlags override keys of Tekton's feature-flags ConfigMap; every
	// other key keeps the release's default, except coschedule, which is
	// "disabled" (the affinity assistant needs more than this cluster has).
	FeatureFlags map[string]string
	// Defaults override keys of Tekton's config-defaults ConfigMap (for
	// example default-maximum-resolution-timeout).
	Defaults map[string]string
	// Args are more flags for the controller (for example -kube-api-qps).
	Args []string
}

// Controller is Tekton's controller running on the host.
type Controller struct {
	// LogPath is the controller's log (knative's JSON lines): in the test's
	// temporary directory, or under <repo>/.cache/tekton/logs with
	// POD_RUNNER_KEEP set.
	LogPath string
	// Setup is how long building, imaging, configuring and starting took.
	Setup   time.Duration
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
}

// Start builds what is missing, then runs Tekton's controller until the
// test ends; it skips the test when local-k8s is not on this machine. It holds a lock on <repo>/.cache/tekton/controller.lock while
// the controller runs (it binds fixed host ports), so a second Start in
// another test binary waits for the first to end.
func Start(t testing.TB, opts Options) *Controller {
	t.Helper()
	kubeconfig := os.Getenv("KUBECONFIG")
	if kubeconfig == "" {
		t.Fatal("tektonlocal: KUBECONFIG is not set")
	}
	// The images go straight into local-k8s's containerd: another cluster
	// (Kind) has no such socket.
	_, err := os.Stat(filepath.Join(kube.State(), "containerd", "containerd.sock"))
	testenv.Require(t, "local-k8s's containerd (Tekton's controller runs against local-k8s only)", err)
	began := time.Now()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := lock(t, filepath.Join(root, ".cache", "tekton", "controller.lock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)
	locked := time.Now()
	bin, err := Build(root)
	if err != nil {
		t.Fatal(err)
	}
	built := time.Now()
	if err := Images(root, bin); err != nil {
		t.Fatal(err)
	}
	imaged := time.Now()
	moduleDir, err := tektonModule(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := applyConfig(moduleDir, opts.FeatureFlags, opts.Defaults); err != nil {
		t.Fatal(err)
	}
	env, err := controllerEnv(moduleDir)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-kubeconfig", kubeconfig, "-disable-ha",
		"-entrypoint-image", ImageRef("entrypoint"), "-nop-image", ImageRef("nop"),
		"-sidecarlogresults-image", ImageRef("sidecarlogresults"), "-workingdirinit-image", ImageRef("workingdirinit"),
		"-shell-image", ShellImage, "-shell-image-win", ShellImage}
	if opts.Namespace != "" {
		args = append(args, "-namespace", opts.Namespace)
	}
	args = append(args, opts.Args...)
	c := launch(t, root, filepath.Join(bin, "controller"), args, env, "controller", startedAll("pipelinerun.Reconciler", "taskrun.Reconciler"))
	c.Setup = time.Since(began)
	t.Logf("Tekton %s controller ready in %.1fs (lock %.1fs, build %.1fs, images %.1fs, config+start %.1fs); log %s",
		Version, c.Setup.Seconds(), locked.Sub(began).Seconds(), built.Sub(locked).Seconds(),
		imaged.Sub(built).Seconds(), time.Since(imaged).Seconds(), c.LogPath)
	return c
}

// launch runs one of Tekton's commands on the host until the test ends,
// its log in the test's temporary directory (or kept, with
// POD_RUNNER_KEEP), and waits until it is ready (waitReady).
func launch(t testing.TB, root, path string, args, env []string, what string, ready func(started []string) bool) *Controller {
	t.Helper()
	for _, p := range ports {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			t.Fatalf("tektonlocal: port %d is taken (another Tekton controller still running?): %v", p, err)
		}
		l.Close()
	}
	logDir := t.TempDir()
	if os.Getenv("POD_RUNNER_KEEP") != "" {
		// Kept for a look after the test, as test/cluster keeps namespaces.
		logDir = filepath.Join(root, ".cache", "tekton", "logs")
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c := &Controller{LogPath: filepath.Join(logDir, fmt.Sprintf("%s-%d.log", what, time.Now().UnixNano())), exited: make(chan struct{})}
	logFile, err := os.Create(c.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(path, args...)
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	// A test binary killed by its timeout runs no cleanup: the process
	// must not outlive it and keep the ports.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("tektonlocal: start the %s: %v", what, err)
	}
	go func() {
		_ = c.cmd.Wait()
		logFile.Close()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("Tekton %s log (last lines):\n%s", what, tail(c.LogPath, 40))
		}
	})
	if err := c.waitReady(2*time.Minute, ready); err != nil {
		t.Fatalf("tektonlocal: %s: %v\n%s", what, err, tail(c.LogPath, 40))
	}
	return c
}

// Pid is the controller's process ID.
func (c *Controller) Pid() int { return c.cmd.Process.Pid }

// Stop stops the controller (SIGTERM, then SIGKILL after 15 s); Start's
// cleanup calls it too.
func (c *Controller) Stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// waitReady waits until ready says yes to the log lines of the reconcilers
// that have started their workers (their informers have synced), so that a
// run created next is timed from a ready controller.
func (c *Controller) waitReady(timeout time.Duration, ready func(started []string) bool) error {
	deadline := time.After(timeout)
	for {
		b, _ := os.ReadFile(c.LogPath)
		var started []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "Started workers") {
				started = append(started, line)
			}
		}
		if ready(started) {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("exited while starting")
		case <-deadline:
			return fmt.Errorf("the reconcilers did not all start within %s", timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startedAll is a waitReady test: a line names each reconciler.
func startedAll(reconcilers ...string) func([]string) bool {
	return func(started []string) bool {
		for _, r := range reconcilers {
			if !slices.ContainsFunc(started, func(l string) bool { return strings.Contains(l, r) }) {
				return false
			}
		}
		return true
	}
}

// lock takes the file lock, waiting for another holder to let go.
func lock(t testing.TB, path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("tektonlocal lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("tektonlocal lock: %w", err)
	}
	deadline := time.Now().Add(30 * time.Minute)
	for logged := false; ; {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("tektonlocal lock %s: %w", path, err)
		}
		if !logged {
			t.Logf("tektonlocal: another test runs Tekton's controller; waiting for %s", path)
			logged = true
		}
		time.Sleep(time.Second)
	}
	return func() { f.Close() }, nil
}

// tektonModule is the pinned Tekton module's directory in the module cache.
func tektonModule(root string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", modulePath)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("find the Tekton module: %w", err)
	}
	dir, version, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if version != Version {
		return "", fmt.Errorf("go.mod requires Tekton %s, tektonlocal runs %s", version, Version)
	}
	return dir, nil
}

// Config is the namespace and ConfigMaps of the release's config/, with
// coschedule disabled, the given feature flags and the given defaults, as
// one YAML stream.
func Config(moduleDir string, flags, defaults map[string]string) ([]byte, error) {
	docs := []string{filepath.Join(moduleDir, "config", "100-namespace", "100-namespace.yaml")}
	cms, err := filepath.Glob(filepath.Join(moduleDir, "config", "config-*.yaml"))
	if err != nil || len(cms) == 0 {
		return nil, fmt.Errorf("no config-*.yaml in %s: %v", moduleDir, err)
	}
	sort.Strings(cms)
	docs = append(docs, cms...)
	var out bytes.Buffer
	for _, path := range docs {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("tekton config: %w", err)
		}
		var set map[string]string
		switch filepath.Base(path) {
		case "config-feature-flags.yaml":
			set = map[string]string{"coschedule": "disabled"}
			maps.Copy(set, flags)
		case "config-defaults.yaml":
			set = defaults
		}
		if len(set) > 0 {
			cm := &corev1.ConfigMap{}
			if err := yaml.Unmarshal(b, cm); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if _, ok := set["coschedule"]; ok && cm.Data["coschedule"] == "" {
				return nil, fmt.Errorf("%s has no coschedule flag", path)
			}
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			maps.Copy(cm.Data, set)
			if b, err = yaml.Marshal(cm); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		}
		out.WriteString("---\n")
		out.Write(b)
		out.WriteString("\n")
	}
	return out.Bytes(), nil
}

// applyConfig applies the release's CRDs (kube.TektonCRDs, server-side
// apply: the same objects test/cluster applies, idempotent) and its config.
func applyConfig(moduleDir string, flags, defaults map[string]string) error {
	stream, err := kube.TektonCRDs(moduleDir)
	if err != nil {
		return err
	}
	crds := exec.Command("kubectl", "apply", "--server-side", "--force-conflicts", "-f", "-")
	crds.Stdin = bytes.NewReader(stream)
	if out, err := crds.CombinedOutput(); err != nil {
		return fmt.Errorf("apply Tekton's CRDs: %w: %s", err, out)
	}
	if err := kube.Established("crd/pipelineruns.tekton.dev", "crd/taskruns.tekton.dev", "crd/customruns.tekton.dev", "crd/resolutionrequests.resolution.tekton.dev"); err != nil {
		return fmt.Errorf("wait for the CRDs: %w", err)
	}
	cfg, err := Config(moduleDir, flags, defaults)
	if err != nil {
		return err
	}
	cmd := exec.Command("kubectl", "apply", "--server-side", "--force-conflicts", "--field-manager=pod-runner-tektonlocal", "-f", "-")
	cmd.Stdin = bytes.NewReader(cfg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apply Tekton's config: %w: %s", err, out)
	}
	return nil
}

// controllerEnv is the plain environment of the release's controller
// Deployment (CONFIG_*_NAME, METRICS_DOMAIN, …) plus SYSTEM_NAMESPACE,
// which the Deployment takes from the downward API. SSL_* point into the
// Deployment's mounts and are left out.
func controllerEnv(moduleDir string) ([]string, error) {
	return deploymentEnv(filepath.Join(moduleDir, "config", "controller.yaml"), SystemNamespace)
}

// deploymentEnv is the plain environment of the first Deployment in the
// file at path, plus SYSTEM_NAMESPACE=namespace.
func deploymentEnv(path, namespace string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tekton deployment: %w", err)
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return nil, fmt.Errorf("%s: no Deployment", path)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		d := &appsv1.Deployment{}
		if err := yaml.Unmarshal(doc, d); err != nil || d.Kind != "Deployment" {
			continue
		}
		env := []string{"SYSTEM_NAMESPACE=" + namespace}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom == nil && !strings.HasPrefix(e.Name, "SSL_") {
					env = append(env, e.Name+"="+e.Value)
				}
			}
		}
		return env, nil
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
