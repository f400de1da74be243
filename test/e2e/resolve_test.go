package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/e7763abc/pod-runner/test/remotes"
)

// remotePipeline comes from a git repository. Its first task's Task is in
// an OCI bundle, its second task's Task in the same repository, whose step
// refers to a StepAction served over http.
const remotePipeline = `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: from-git}
spec:
  params: [{name: bundle}, {name: repo}, {name: action}]
  results: [{name: greeting, value: $(tasks.greet.results.out)}]
  tasks:
  - name: make
    taskRef:
      resolver: bundles
      params:
      - {name: bundle, value: $(params.bundle)}
      - {name: name, value: maker}
      - {name: kind, value: task}
  - name: greet
    params: [{name: word, value: $(tasks.make.results.word)}, {name: action, value: $(params.action)}]
    taskRef:
      resolver: git
      params:
      - {name: url, value: $(params.repo)}
      - {name: revision, value: main}
      - {name: pathInRepo, value: tasks/greet.yaml}
`

const remoteTask = `apiVersion: tekton.dev/v1
kind: Task
metadata: {name: greet}
spec:
  params: [{name: word}, {name: action}]
  results: [{name: out}]
  steps:
  - name: say
    ref:
      resolver: http
      params: [{name: url, value: $(params.action)}]
    params: [{name: text, value: "hello $(params.word)"}, {name: dest, value: $(results.out.path)}]
`

const remoteStepAction = `apiVersion: tekton.dev/v1beta1
kind: StepAction
metadata: {name: say}
spec:
  params: [{name: text}, {name: dest}]
  image: busybox
  env: [{name: TEXT, value: $(params.text)}, {name: DEST, value: $(params.dest)}]
  script: printf '%s' "$TEXT" > "$DEST"
`

// TestRemoteResolution: a PipelineRun whose Pipeline comes from git, one
// Task from an OCI bundle on a registry on loopback and one StepAction over
// http runs with Tekton's own resolvers, in-process, and its status records
// where each came from as Tekton does (status.provenance.refSource).
func TestRemoteResolution(t *testing.T) {
	r0 := remotes.GitRepo(t, map[string]string{"pipeline.yaml": remotePipeline, "tasks/greet.yaml": remoteTask})
	repo, commit := r0.FileURL(), r0.Commit
	action := remotes.Serve(t, remoteStepAction)
	bundle := remotes.Registry(t) + "/tasks/maker:v1"
	remotes.PushBundle(t, bundle, &v1.Task{
		TypeMeta:   metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "Task"},
		ObjectMeta: metav1.ObjectMeta{Name: "maker"},
		Spec: v1.TaskSpec{
			Results: []v1.TaskResult{{Name: "word"}},
			Steps:   []v1.Step{{Name: "make", Image: "busybox", Script: "printf world > $(results.word.path)"}},
		},
	})

	r := run(t, fmt.Sprintf(`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: remote}
spec:
  params:
  - {name: bundle, value: %q}
  - {name: repo, value: %q}
  - {name: action, value: %q}
  pipelineRef:
    resolver: git
    params:
    - {name: url, value: %q}
    - {name: revision, value: main}
    - {name: pathInRepo, value: pipeline.yaml}
`, bundle, repo, action+"/say.yaml", repo))
	if r.code != 0 {
		t.Fatalf("exit %d, want 0", r.code)
	}
	if got := r.pipelineResult(t, "greeting").StringVal; got != "hello world" {
		t.Errorf("pipeline result greeting = %q, want %q", got, "hello world")
	}
	if got := r.pr.Labels["tekton.dev/pipeline"]; got != "from-git" {
		t.Errorf("label tekton.dev/pipeline = %q, want the resolved Pipeline's name", got)
	}
	src := r.pr.Status.Provenance.RefSource
	if src == nil || src.URI != "git+"+repo || src.Digest["sha1"] != commit || src.EntryPoint != "pipeline.yaml" {
		t.Errorf("PipelineRun provenance.refSource = %+v, want git+%s@%s pipeline.yaml", src, repo, commit)
	}
	if src := r.taskRuns["greet"].Status.Provenance.RefSource; src == nil || src.EntryPoint != "tasks/greet.yaml" {
		t.Errorf("TaskRun greet provenance.refSource = %+v, want the Task's place in the repository", src)
	}
	if steps := r.taskRuns["greet"].Status.Steps; len(steps) != 1 || steps[0].Provenance == nil || steps[0].Provenance.RefSource == nil || steps[0].Provenance.RefSource.URI != action+"/say.yaml" {
		t.Errorf("TaskRun greet status.steps %+v, want the StepAction's refSource (its URL) in the step's provenance", steps)
	}
	if src := r.taskRuns["make"].Status.Provenance.RefSource; src == nil || !strings.HasPrefix(src.URI, strings.TrimSuffix(bundle, ":v1")) || src.Digest["sha256"] == "" {
		t.Errorf("TaskRun make provenance.refSource = %+v, want the bundle %s", src, bundle)
	}
}

// TestRemoteResolutionFailures: each way a resolution fails is one clear
// error naming the field and the resolver's answer, exit 2, nothing run.
func TestRemoteResolutionFailures(t *testing.T) {
	repo := remotes.GitRepo(t, map[string]string{"tasks/greet.yaml": remoteTask}).FileURL()
	notFound := remotes.ServeHandler(t, http.NotFoundHandler())
	closed := remotes.ClosedAddr(t)
	tests := []struct {
		name, ref string
		env       map[string]string
		want      []string
	}{{
		name: "git: no such file",
		ref:  fmt.Sprintf(`{resolver: git, params: [{name: url, value: %q}, {name: revision, value: main}, {name: pathInRepo, value: nope.yaml}]}`, repo),
		want: []string{`spec.taskRef: resolver "git"`, "nope.yaml"},
	}, {
		name: "git: no such revision",
		ref:  fmt.Sprintf(`{resolver: git, params: [{name: url, value: %q}, {name: revision, value: gone}, {name: pathInRepo, value: tasks/greet.yaml}]}`, repo),
		want: []string{`spec.taskRef: resolver "git"`, "gone"},
	}, {
		name: "http: 404",
		ref:  fmt.Sprintf(`{resolver: http, params: [{name: url, value: %q}]}`, notFound+"/task.yaml"),
		want: []string{`spec.taskRef: resolver "http"`, notFound + "/task.yaml", "not found"},
	}, {
		name: "bundles: no registry",
		ref:  fmt.Sprintf(`{resolver: bundles, params: [{name: bundle, value: "%s/nothing:1"}, {name: name, value: t}, {name: kind, value: task}]}`, closed),
		want: []string{`spec.taskRef: resolver "bundles"`, "connection refused"},
	}, {
		name: "cluster without a kubeconfig",
		ref:  `{resolver: cluster, params: [{name: name, value: t}, {name: namespace, value: default}, {name: kind, value: task}]}`,
		want: []string{`spec.taskRef: resolver "cluster"`, "--kubeconfig"},
	}, {
		name: "hub: not reachable",
		ref:  `{resolver: hub, params: [{name: name, value: git-clone}, {name: version, value: "0.9"}, {name: kind, value: task}]}`,
		env:  map[string]string{"ARTIFACT_HUB_API": "http://" + closed},
		want: []string{`spec.taskRef: resolver "hub"`, "connection refused"},
	}, {
		name: "no such resolver",
		ref:  `{resolver: nowhere, params: []}`,
		want: []string{`resolver "nowhere"`, "the resolvers are bundles, git, http, hub"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			r := run(t, fmt.Sprintf("apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata: {name: bad}\nspec:\n  taskRef: %s\n", tt.ref))
			if r.code != 2 {
				t.Fatalf("exit %d, want 2", r.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q does not say %q", r.stderr, w)
				}
			}
			if strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
				t.Errorf("more than one line of error: %q", r.stderr)
			}
		})
	}
}
