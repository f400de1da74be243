package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektontest "github.com/tektoncd/pipeline/test"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	repo, commit := gitRepo(t, map[string]string{"pipeline.yaml": remotePipeline, "tasks/greet.yaml": remoteTask})
	action := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, remoteStepAction)
	}))
	defer action.Close()
	bundle := pushBundle(t, &v1.Task{
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
`, bundle, repo, action.URL+"/say.yaml", repo))
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
	if src := r.taskRuns["make"].Status.Provenance.RefSource; src == nil || !strings.HasPrefix(src.URI, strings.TrimSuffix(bundle, ":v1")) || src.Digest["sha256"] == "" {
		t.Errorf("TaskRun make provenance.refSource = %+v, want the bundle %s", src, bundle)
	}
}

// TestRemoteResolutionFailures: each way a resolution fails is one clear
// error naming the field and the resolver's answer, exit 2, nothing run.
func TestRemoteResolutionFailures(t *testing.T) {
	repo, _ := gitRepo(t, map[string]string{"tasks/greet.yaml": remoteTask})
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	closed := closedPort(t)
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
		ref:  fmt.Sprintf(`{resolver: http, params: [{name: url, value: %q}]}`, notFound.URL+"/task.yaml"),
		want: []string{`spec.taskRef: resolver "http"`, notFound.URL + "/task.yaml", "not found"},
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

// gitRepo is a git repository on disk holding files on branch main, as a
// file:// URL, and its commit.
func gitRepo(t *testing.T, files map[string]string) (url, commit string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, dir, "init", "-q", "-b", "main")
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "tasks")
	return "file://" + dir, git(t, dir, "rev-parse", "HEAD")
}

// git runs git in dir, as a committer of its own, and returns its output.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// pushBundle pushes a Task as a Tekton bundle (Tekton's own test helper,
// the format tkn bundle push writes) to a registry on loopback and returns
// its reference.
func pushBundle(t *testing.T, task *v1.Task) string {
	t.Helper()
	reg := httptest.NewServer(registry.New())
	t.Cleanup(reg.Close)
	ref := strings.TrimPrefix(reg.URL, "http://") + "/tasks/maker:v1"
	if _, err := tektontest.CreateImage(ref, task); err != nil {
		t.Fatalf("push bundle: %v", err)
	}
	return ref
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
