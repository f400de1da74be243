// Package podman runs Pods under `podman kube play`, with the project's
// private podman configuration, and checks what their containers did.
package podman

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/podmanrun"
	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// Images built by `make images`.
const (
	busyboxImage   = "localhost/busybox:pod-runner"
	podRunnerImage = "localhost/pod-runner:dev"
)

var (
	// root is the repository's root.
	root string
	// skipReason, when set, is why podman cannot run containers on this
	// machine: every test skips with it.
	skipReason string
)

func TestMain(m *testing.M) {
	var err error
	root, err = repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "podman e2e:", err)
		os.Exit(1)
	}
	privateConfig()
	if err := ready(); err != nil {
		var skip skipError
		if !errors.As(err, &skip) {
			fmt.Fprintln(os.Stderr, "podman e2e:", err)
			os.Exit(1)
		}
		skipReason = skip.Error()
		fmt.Fprintf(os.Stderr, "\n*** podman e2e NOT RUN: %s ***\n\n", skipReason)
	}
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// skipError is a reason to skip the podman tests: podman is missing or
// refuses to start containers on this machine. Anything else fails.
type skipError struct{ reason string }

func (e skipError) Error() string { return e.reason }

// privateConfig points podman at the configuration `make podman-setup`
// writes under .cache/podman, unless the caller chose one.
func privateConfig() {
	dir := filepath.Join(root, ".cache", "podman")
	for k, v := range map[string]string{
		"CONTAINERS_CONF":            filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF":    filepath.Join(dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF": filepath.Join(root, "hack", "podman", "registries.conf"),
	} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
}

// ready checks that podman, its private configuration and the images are
// there, and that podman starts a container.
func ready() error {
	if _, err := exec.LookPath("podman"); err != nil {
		return skipError{"podman is not installed (make podman-install installs Debian's podman): " + err.Error()}
	}
	if _, err := os.Stat(os.Getenv("CONTAINERS_CONF")); err != nil {
		return fmt.Errorf("no private podman configuration (run make podman-setup): %w", err)
	}
	for _, image := range []string{busyboxImage, podRunnerImage} {
		if _, err := podman(context.Background(), "image", "exists", image); err != nil {
			return fmt.Errorf("image %s is missing (run make images): %w", image, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := podman(ctx, "run", "--rm", "--network", "none", busyboxImage, "echo", "ok")
	if err != nil || strings.TrimSpace(out) != "ok" {
		return skipError{fmt.Sprintf("podman refuses to start a container: podman run %s: %v %q", busyboxImage, err, out)}
	}
	return nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test directory")
		}
		dir = parent
	}
}

// podman runs podman with ctx and returns its stdout; on failure the error
// carries stderr.
func podman(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "podman", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// podman's children (conmon) may keep inherited pipes open: do not wait
	// for them past the process itself.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// needPodman skips t when podman cannot run here, saying why.
func needPodman(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		testenv.Require(t, "podman", errors.New(skipReason))
	}
}

// pod is a Pod played by podman kube play.
type pod struct {
	name    string
	spec    *corev1.Pod
	played  time.Time
	ended   time.Duration // from play to every container stopped
	volumes []string      // podman volumes made for its emptyDirs and ConfigMaps
}

// play runs `podman kube play` on the manifest: a Pod, or a v1 List or
// multi-document YAML holding one Pod and the ConfigMaps it mounts. The
// Pod and its volumes are removed when the test ends.
func play(t *testing.T, manifest []byte) *pod {
	t.Helper()
	docs, p, err := kubeDocuments(manifest)
	if err != nil {
		t.Fatalf("read manifest: %v\n%s", err, manifest)
	}
	file := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(file, docs, 0o644); err != nil {
		t.Fatal(err)
	}
	pd := &pod{name: p.Name, spec: p}
	for _, v := range p.Spec.Volumes {
		// podman 4.3 names an emptyDir's volume by the volume name and a
		// ConfigMap's by the ConfigMap name; kube down keeps both.
		switch {
		case v.EmptyDir != nil:
			pd.volumes = append(pd.volumes, v.Name)
		case v.ConfigMap != nil:
			pd.volumes = append(pd.volumes, v.ConfigMap.Name)
		}
	}
	t.Cleanup(func() { pd.remove(t) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pd.played = time.Now()
	if out, err := podman(ctx, "kube", "play", file); err != nil {
		t.Fatalf("kube play: %v\n%s\nmanifest:\n%s", err, out, docs)
	}
	return pd
}

// kubeDocuments turns a manifest into the multi-document YAML podman 4.3
// reads (it does not read a v1 List) and returns its Pod.
func kubeDocuments(manifest []byte) ([]byte, *corev1.Pod, error) {
	var objs []json.RawMessage
	for _, doc := range splitYAML(manifest) {
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, nil, err
		}
		var head struct {
			Kind  string            `json:"kind"`
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(js, &head); err != nil {
			return nil, nil, err
		}
		switch head.Kind {
		case "":
		case "List":
			objs = append(objs, head.Items...)
		default:
			objs = append(objs, js)
		}
	}
	var out bytes.Buffer
	var p *corev1.Pod
	for _, js := range objs {
		var head struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(js, &head); err != nil {
			return nil, nil, err
		}
		if head.Kind == "Pod" {
			if p != nil {
				return nil, nil, errors.New("more than one Pod")
			}
			p = &corev1.Pod{}
			if err := json.Unmarshal(js, p); err != nil {
				return nil, nil, err
			}
			if podmanrun.SplitSubPaths(p) {
				var err error
				if js, err = json.Marshal(p); err != nil {
					return nil, nil, err
				}
			}
		}
		y, err := yaml.JSONToYAML(js)
		if err != nil {
			return nil, nil, err
		}
		out.WriteString("---\n")
		out.Write(y)
	}
	if p == nil {
		return nil, nil, errors.New("no Pod")
	}
	return out.Bytes(), p, nil
}

func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// container is the podman name of one of the Pod's containers.
func (p *pod) container(name string) string { return p.name + "-" + name }

// containers are the podman names of the Pod's containers, init
// containers first.
func (p *pod) containers() []string {
	var names []string
	for _, c := range p.spec.Spec.InitContainers {
		names = append(names, p.container(c.Name))
	}
	for _, c := range p.spec.Spec.Containers {
		names = append(names, p.container(c.Name))
	}
	return names
}

// wait waits until every container of the Pod has stopped, failing t after
// timeout (and showing what still runs) rather than hanging.
func (p *pod) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	names := p.containers()[len(p.spec.Spec.InitContainers):]
	args := append([]string{"wait", "--condition", "stopped"}, names...)
	if _, err := podman(ctx, args...); err != nil {
		ps, _ := podman(context.Background(), "ps", "-a", "--pod", "--filter", "pod="+p.name)
		t.Fatalf("pod %s did not end within %s: %v\n%s\n%s", p.name, timeout, err, ps, p.allLogs())
	}
	p.ended = time.Since(p.played)
}

// exitCode is how a container of the Pod ended.
func (p *pod) exitCode(t *testing.T, name string) int {
	t.Helper()
	out, err := podman(context.Background(), "inspect", "--format", "{{.State.ExitCode}}", p.container(name))
	if err != nil {
		t.Fatal(err)
	}
	code, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("exit code of %s: %v", name, err)
	}
	return code
}

// logs is a container's log (stdout and stderr, as podman logs prints them).
func (p *pod) logs(t *testing.T, name string) string {
	t.Helper()
	out, err := p.logsOf(p.container(name))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (p *pod) logsOf(container string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", "logs", container)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("podman logs %s: %w: %s", container, err, out.String())
	}
	return out.String(), nil
}

// allLogs is every container's log, for a failure message.
func (p *pod) allLogs() string {
	var b strings.Builder
	for _, c := range p.containers() {
		out, err := p.logsOf(c)
		fmt.Fprintf(&b, "--- %s (err %v)\n%s", c, err, out)
	}
	return b.String()
}

// remove deletes the Pod, its containers and its emptyDir volumes, showing
// every log first when the test failed.
func (p *pod) remove(t *testing.T) {
	if t.Failed() {
		t.Logf("logs of pod %s:\n%s", p.name, p.allLogs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := podman(ctx, "pod", "rm", "--force", "--time", "0", p.name); err != nil {
		t.Errorf("remove pod: %v", err)
	}
	for _, v := range p.volumes {
		if _, err := podman(ctx, "volume", "rm", "--force", v); err != nil {
			t.Errorf("remove volume: %v", err)
		}
	}
}

// podsLabelled counts the podman pods carrying label=value.
func podsLabelled(t *testing.T, label, value string) int {
	t.Helper()
	out, err := podman(context.Background(), "pod", "ps", "--quiet", "--filter", "label="+label+"="+value)
	if err != nil {
		t.Fatal(err)
	}
	return len(strings.Fields(out))
}
