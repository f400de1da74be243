package podspec

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// fakeResolver answers from a map and records what it was asked.
type fakeResolver struct {
	cmds  map[string][]string
	asked []string
}

func (f *fakeResolver) Entrypoint(_ context.Context, image string, hasArgs bool) (Entrypoint, error) {
	f.asked = append(f.asked, image)
	cmd, ok := f.cmds[image]
	if !ok {
		return Entrypoint{}, &notFound{image}
	}
	if !hasArgs {
		cmd = append(cmd, "default-arg")
	}
	return Entrypoint{Command: cmd, Image: image + "@sha256:0"}, nil
}

type notFound struct{ image string }

func (e *notFound) Error() string { return "MANIFEST_UNKNOWN: " + e.image }

func TestTaskRunPodAndEntrypoints(t *testing.T) {
	c := compileYAML(t, `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: tr}
spec:
  params: [{name: tag, value: "3"}]
  taskRef: {name: t}
---
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: t}
spec:
  params: [{name: tag}]
  steps:
  - name: no-args
    image: tool:$(params.tag)
  - name: with-args
    image: tool:$(params.tag)
    args: [x]
  - name: script
    image: other
    script: echo
`)
	r := &fakeResolver{cmds: map[string][]string{"tool:3": {"/tool"}}}
	pod, err := Pod(context.Background(), c, Options{Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, pod)
	if pod.Labels["tekton.dev/taskRun"] != "tr" || pod.Labels["tekton.dev/task"] != "t" || pod.Labels["tekton.dev/taskRunUID"] != c.Plan.GetUid() {
		t.Errorf("labels = %v", pod.Labels)
	}
	if !reflect.DeepEqual(r.asked, []string{"tool:3", "tool:3"}) {
		t.Errorf("looked up %q", r.asked)
	}
	var images []string
	for _, ct := range pod.Spec.Containers[1:] {
		images = append(images, ct.Image)
	}
	if want := []string{"tool:3@sha256:0", "tool:3@sha256:0", "other"}; !reflect.DeepEqual(images, want) {
		t.Errorf("images = %q, want %q", images, want)
	}
	raw, _ := podlayout.DecodePlan(pod.Spec.Containers[0].Env[0].Value)
	plan := &planpb.Plan{}
	if err := proto.Unmarshal(raw, plan); err != nil {
		t.Fatal(err)
	}
	steps := plan.GetTasks()[0].GetSpec().GetSteps()
	if got := steps[0].GetCommand(); !reflect.DeepEqual(got, []string{"/tool", "default-arg"}) {
		t.Errorf("no-args command = %q", got)
	}
	if got := steps[1].GetCommand(); !reflect.DeepEqual(got, []string{"/tool"}) {
		t.Errorf("with-args command = %q", got)
	}
	if len(steps[2].GetCommand()) != 0 || len(c.Plan.GetTasks()[0].GetSpec().GetSteps()[0].GetCommand()) != 0 {
		t.Errorf("script step or the compiled plan got a command")
	}
}

func TestPodErrors(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		resolver Resolver
		want     []string
	}{
		{
			name: "entrypoint not found",
			yaml: `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: tr}
spec:
  taskSpec:
    steps: [{name: run, image: "registry.invalid/app:1"}]
`,
			resolver: &fakeResolver{},
			want:     []string{`step "run"`, `registry.invalid/app:1`, "MANIFEST_UNKNOWN"},
		},
		{
			name: "lookups off",
			yaml: `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: tr}
spec:
  taskSpec:
    steps: [{image: app}]
`,
			want: []string{`step "unnamed-0"`, `"app"`, "lookups are off"},
		},
		{
			name: "image from a result",
			yaml: `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: pr}
spec:
  pipelineSpec:
    tasks:
    - name: a
      taskSpec:
        results: [{name: img}]
        steps: [{image: busybox, script: "printf busybox > $(results.img.path)"}]
    - name: b
      params: [{name: img, value: $(tasks.a.results.img)}]
      taskSpec:
        params: [{name: img}]
        steps: [{image: $(params.img), script: echo}]
`,
			want: []string{`task "b"`, "known only at run time"},
		},
		{
			name: "a sidecar's image known only at run time",
			yaml: `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: pr}
spec:
  pipelineSpec:
    tasks:
    - {name: a, taskSpec: {results: [{name: img}], steps: [{image: busybox, script: echo}]}}
    - name: b
      params: [{name: img, value: $(tasks.a.results.img)}]
      taskSpec:
        params: [{name: img}]
        sidecars: [{name: db, image: $(params.img), script: echo}]
        steps: [{image: busybox, script: echo}]
`,
			want: []string{`task "b", sidecar "db"`, "known only at run time"},
		},
		{
			name: "a sidecar with no command, image lookups off",
			yaml: `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: tr}
spec:
  taskSpec:
    sidecars: [{name: db, image: postgres}]
    steps: [{image: busybox, script: echo}]
`,
			want: []string{`sidecar "db"`, "image lookups are off"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Pod(context.Background(), compileYAML(t, tt.yaml), Options{Resolver: tt.resolver})
			var le *load.Error
			if err == nil || !asLoadError(err, &le) {
				t.Fatalf("err = %v (%T), want a *load.Error", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
}

func asLoadError(err error, le **load.Error) bool {
	e, ok := err.(*load.Error)
	*le = e
	return ok
}

// TestContainerNameClash: deterministic names can clash ("a-b"+"c" and
// "a"+"b-c"); the injector refuses rather than build an invalid Pod.
func TestContainerNameClash(t *testing.T) {
	c := compileYAML(t, `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: pr}
spec:
  pipelineSpec:
    tasks:
    - {name: a-b, taskSpec: {steps: [{name: c, image: busybox, script: echo}]}}
    - {name: a, taskSpec: {steps: [{name: b-c, image: busybox, script: echo}]}}
`)
	_, err := Pod(context.Background(), c, Options{})
	if err == nil || !strings.Contains(err.Error(), `"a-b-c"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestBuildList(t *testing.T) {
	c := compileYAML(t, pipelineYAML)
	list, err := Build(context.Background(), c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, it := range list.Items {
		kinds = append(kinds, it.Object.GetObjectKind().GroupVersionKind().Kind)
	}
	if list.Kind != "List" || list.APIVersion != "v1" || !reflect.DeepEqual(kinds, []string{"Secret", "ConfigMap", "Pod"}) {
		t.Errorf("list %s/%s of %q", list.APIVersion, list.Kind, kinds)
	}
	pod := list.Items[2].Object.(*corev1.Pod)
	if pod.Spec.InitContainers[0].Image != DefaultImage {
		t.Errorf("default image = %q", pod.Spec.InitContainers[0].Image)
	}
}

// TestPlanTooLarge: a plan over Linux's limit on one environment variable
// is refused when compiled rather than failing the supervisor's exec.
func TestPlanTooLarge(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata: {name: big}\nspec:\n  taskSpec:\n    steps:\n    - image: busybox\n      script: |\n")
	// Random text, which gzip cannot shrink much.
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 4000; i++ {
		fmt.Fprintf(&b, "        echo '%016x%016x%016x%016x%016x'\n", r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())
	}
	_, err := Pod(context.Background(), compileYAML(t, b.String()), Options{})
	if err == nil || !strings.Contains(err.Error(), "over Linux's 131072-byte limit") {
		t.Fatalf("err = %v", err)
	}
}
