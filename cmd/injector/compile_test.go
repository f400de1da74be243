package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

type list struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := compileMain(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// pod decodes the Pod, the last item of the printed List.
func pod(t *testing.T, out string, format string) *corev1.Pod {
	t.Helper()
	raw := []byte(out)
	if format == "yaml" {
		var err error
		if raw, err = yaml.YAMLToJSON(raw); err != nil {
			t.Fatal(err)
		}
	}
	var l list
	if err := json.Unmarshal(raw, &l); err != nil {
		t.Fatal(err)
	}
	if l.APIVersion != "v1" || l.Kind != "List" || len(l.Items) == 0 {
		t.Fatalf("not a v1 List: %s", out)
	}
	p := &corev1.Pod{}
	if err := json.Unmarshal(l.Items[len(l.Items)-1], p); err != nil {
		t.Fatal(err)
	}
	if p.Kind != "Pod" {
		t.Fatalf("last item is a %s", p.Kind)
	}
	return p
}

func plan(t *testing.T, p *corev1.Pod) *planpb.Plan {
	t.Helper()
	raw, err := podlayout.DecodePlan(p.Spec.Containers[0].Env[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	pl := &planpb.Plan{}
	if err := proto.Unmarshal(raw, pl); err != nil {
		t.Fatal(err)
	}
	return pl
}

const taskRun = `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: hello, namespace: team}
spec:
  taskSpec:
    steps:
    - {name: say, image: IMAGE, args: [hi]}
    - {name: shell, image: busybox, script: echo}
`

func TestCompileOutput(t *testing.T) {
	for _, format := range []string{"yaml", "json"} {
		t.Run(format, func(t *testing.T) {
			in := strings.ReplaceAll(taskRun, "IMAGE", "tool:1")
			code, out, errOut := run(t, in, "-f", "-", "-o", format, "--image", "reg/pr:1", "--offline", "--entrypoint", "tool:1=/bin/tool --verbose")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			p := pod(t, out, format)
			if p.Name != "hello" || p.Namespace != "team" || p.Spec.InitContainers[0].Image != "reg/pr:1" || p.Spec.Containers[0].Image != "reg/pr:1" {
				t.Errorf("pod %s/%s images %q %q", p.Namespace, p.Name, p.Spec.InitContainers[0].Image, p.Spec.Containers[0].Image)
			}
			if got := plan(t, p).GetTasks()[0].GetSpec().GetSteps()[0].GetCommand(); !reflect.DeepEqual(got, []string{"/bin/tool", "--verbose"}) {
				t.Errorf("command = %q", got)
			}
		})
	}
}

func TestCompileNamespaceFlag(t *testing.T) {
	in := strings.ReplaceAll(strings.Replace(taskRun, ", namespace: team", "", 1), "IMAGE", "tool:1")
	code, out, errOut := run(t, in, "-f", "-", "--namespace", "ci", "--entrypoint", "tool:1=/t")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if p := pod(t, out, "yaml"); p.Namespace != "ci" {
		t.Errorf("namespace = %q", p.Namespace)
	}
}

// TestCompileRegistryLookup looks the entrypoint up in a registry served
// from memory, through the command's default resolver.
func TestCompileRegistryLookup(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	image := strings.TrimPrefix(srv.URL, "http://") + "/tool:1"
	cf, _ := empty.Image.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint, cf.Config.Cmd = []string{"/entry"}, []string{"default"}
	img, err := mutate.ConfigFile(empty.Image, cf)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(image)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()

	code, out, errOut := run(t, strings.ReplaceAll(taskRun, "IMAGE", image), "-f", "-", "--platform", "linux/amd64")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	p := pod(t, out, "yaml")
	// The step has args: ENTRYPOINT alone; the image pinned by digest.
	if got := plan(t, p).GetTasks()[0].GetSpec().GetSteps()[0].GetCommand(); !reflect.DeepEqual(got, []string{"/entry"}) {
		t.Errorf("command = %q", got)
	}
	if got, want := p.Spec.Containers[1].Image, strings.TrimSuffix(image, ":1")+"@"+digest.String(); got != want {
		t.Errorf("image = %q, want %q", got, want)
	}
	if p.Spec.Containers[1].Name != podlayout.StepContainer("hello", "say") {
		t.Errorf("container %q", p.Spec.Containers[1].Name)
	}

	// Not in the registry: exit 2 naming the step and the image.
	missing := strings.TrimPrefix(srv.URL, "http://") + "/absent:1"
	code, out, errOut = run(t, strings.ReplaceAll(taskRun, "IMAGE", missing), "-f", "-")
	if code != 2 || out != "" || !strings.Contains(errOut, `step "say"`) || !strings.Contains(errOut, missing) {
		t.Errorf("missing image: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestCompileInvalid: invalid input exits 2 with the *load.Error message
// `pod-runner run` prints, and prints no manifest.
func TestCompileInvalid(t *testing.T) {
	dir := t.TempDir()
	missingTask := filepath.Join(dir, "pr.yaml")
	if err := os.WriteFile(missingTask, []byte("apiVersion: tekton.dev/v1\nkind: PipelineRun\nmetadata: {name: p}\nspec:\n  pipelineSpec:\n    tasks: [{name: a, taskRef: {name: absent}}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string // "" means: the message of load.Read + compile.Compile
	}{
		{name: "unparseable YAML", stdin: "kind: [", args: []string{"-f", "-"}},
		{name: "unknown kind", stdin: "apiVersion: v1\nkind: Frobnicator\nmetadata: {name: x}\n", args: []string{"-f", "-"}},
		{name: "no run", stdin: "apiVersion: tekton.dev/v1\nkind: Task\nmetadata: {name: t}\nspec: {steps: [{image: busybox, script: echo}]}\n", args: []string{"-f", "-"}},
		{name: "missing Task", args: []string{"-f", missingTask}},
		{name: "no file", args: []string{}, want: "injector compile: at least one -f FILE is required\n"},
		{name: "bad output", stdin: taskRun, args: []string{"-f", "-", "-o", "text"}, want: "injector compile: --output: \"text\" is not one of yaml, json, yaml-docs\n"},
		{name: "bad entrypoint flag", stdin: taskRun, args: []string{"-f", "-", "--entrypoint", "x"}, want: "injector compile: --entrypoint \"x\": want IMAGE=CMD\n"},
		{name: "offline without override", stdin: strings.ReplaceAll(taskRun, "IMAGE", "tool:1"), args: []string{"-f", "-", "--offline"}},
		{name: "unreadable file", args: []string{"-f", filepath.Join(dir, "nope.yaml")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.stdin, tt.args...)
			if code != 2 || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			want := tt.want
			if want == "" && tt.name != "offline without override" {
				want = "injector compile: " + compileError(t, tt.stdin, tt.args) + "\n"
			}
			if want != "" && errOut != want {
				t.Errorf("stderr %q, want %q", errOut, want)
			}
			if tt.name == "offline without override" && (!strings.Contains(errOut, `step "say"`) || !strings.Contains(errOut, "--entrypoint tool:1=CMD")) {
				t.Errorf("stderr %q", errOut)
			}
		})
	}
}

// compileError is the error `pod-runner run` reports for the same input:
// load.Read and compile.Compile, a *load.Error for invalid input.
func compileError(t *testing.T, stdin string, args []string) string {
	t.Helper()
	name := args[len(args)-1]
	var docs []load.Doc
	var err error
	if name == "-" {
		docs, err = load.Read("-", strings.NewReader(stdin))
	} else {
		f, oerr := os.Open(name)
		if oerr != nil {
			return "read " + name + ": " + oerr.Error()
		}
		defer f.Close()
		docs, err = load.Read(name, f)
	}
	if err == nil {
		_, err = compile.Compile(context.Background(), docs, compile.Options{Namespace: "default"})
	}
	if err == nil {
		t.Fatal("input compiles")
	}
	if _, ok := err.(*load.Error); !ok {
		t.Errorf("%T is not a *load.Error: %v", err, err)
	}
	return err.Error()
}

// TestCompileYAMLDocs: one document per object, the Pod last.
func TestCompileYAMLDocs(t *testing.T) {
	in := `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: cfg}
spec:
  workspaces: [{name: c, configMap: {name: settings}}]
  taskSpec:
    workspaces: [{name: c}]
    steps: [{image: busybox, script: cat $(workspaces.c.path)/mode}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
`
	code, out, errOut := run(t, in, "-f", "-", "-o", "yaml-docs")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	docs := strings.Split(out, "---\n")
	if len(docs) != 2 {
		t.Fatalf("%d documents:\n%s", len(docs), out)
	}
	var cm corev1.ConfigMap
	var p corev1.Pod
	if err := yaml.Unmarshal([]byte(docs[0]), &cm); err != nil || cm.Kind != "ConfigMap" || cm.Data["mode"] != "fast" {
		t.Errorf("first document: %v %+v", err, cm)
	}
	if err := yaml.Unmarshal([]byte(docs[1]), &p); err != nil || p.Kind != "Pod" ||
		!slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.ConfigMap != nil && v.ConfigMap.Name == cm.Name }) {
		t.Errorf("second document: %v %+v", err, p.Spec.Volumes)
	}
}
