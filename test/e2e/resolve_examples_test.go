package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/e7763abc/pod-runner/test/remotes"
)

// gitClone stands in for the catalog's git-clone 0.10, which the examples
// resolve (the catalog is not reachable from here): the params and
// workspace the examples bind, a real clone, the commit as a result.
const gitClone = `apiVersion: tekton.dev/v1
kind: Task
metadata: {name: git-clone}
spec:
  params:
  - {name: url}
  - {name: revision, default: ""}
  - {name: deleteExisting, default: "true"}
  workspaces: [{name: output}]
  results: [{name: commit}, {name: url}]
  steps:
  - name: clone
    image: alpine/git
    script: |
      git clone -q "$(params.url)" "$(workspaces.output.path)/src"
      cd "$(workspaces.output.path)/src"
      if [ -n "$(params.revision)" ]; then git checkout -q "$(params.revision)"; fi
      printf '%s' "$(git rev-parse HEAD)" > $(results.commit.path)
      printf '%s' "$(params.url)" > $(results.url.path)
`

// gitCloneAction stands in for the catalog's git-clone 0.1 StepAction: a
// real clone (a StepAction's script takes its params through the
// environment).
const gitCloneAction = `apiVersion: tekton.dev/v1beta1
kind: StepAction
metadata: {name: git-clone}
spec:
  params: [{name: url}, {name: revision, default: ""}, {name: output-path}]
  image: alpine/git
  env:
  - {name: URL, value: $(params.url)}
  - {name: REVISION, value: $(params.revision)}
  - {name: OUT, value: $(params.output-path)}
  script: |
    # Locally output-path (/workspace) is the host's own: clone elsewhere.
    test -n "$OUT"
    dest=$(mktemp -d)
    trap 'rm -rf "$dest"' EXIT
    git clone -q "$URL" "$dest/src"
    cd "$dest/src"
    if [ -n "$REVISION" ]; then git checkout -q "$REVISION"; fi
`

// TestResolverExamples runs Tekton's own resolver examples
// (remotes.ResolverExamples) with only their URLs rewritten to stand-ins on
// this machine (remotes.Examples). Each must succeed, clone the rewritten
// repository, and record where its Task or StepAction came from.
func TestResolverExamples(t *testing.T) {
	ex := remotes.NewExamples(t, gitClone, gitCloneAction, func(_ testing.TB, r remotes.Repo) string { return r.FileURL() })
	t.Setenv("ARTIFACT_HUB_API", ex.HubURL)
	dir := filepath.Join(tektonModule(t), "examples", "v1")
	for name, source := range remotes.ResolverExamples {
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			runs, others := ex.Split(string(src))
			if len(runs) == 0 {
				t.Fatal("no run in the example")
			}
			// One invocation per run the file holds, with its other documents.
			for _, doc := range runs {
				r := run(t, strings.Join(append(slices.Clone(others), doc), "\n---\n"))
				if r.code != 0 {
					t.Fatalf("exit %d, want 0", r.code)
				}
				tr := r.tr
				for _, child := range r.taskRuns {
					tr = child
				}
				if tr == nil {
					t.Fatal("no TaskRun")
				}
				uri := ex.Sources[source]
				if tr.Spec.TaskSpec != nil {
					// A StepAction's: the Task is the run's own.
					if src := remotes.OnlyStepSource(tr); src == "" || !strings.HasPrefix(src, uri) {
						t.Errorf("status.steps %+v, want the StepAction's refSource starting %q", tr.Status.Steps, uri)
					}
					continue
				}
				if got := resultOf(tr, "commit"); got != ex.Source.Commit {
					t.Errorf("cloned commit %q, want %q (the rewritten repository's)", got, ex.Source.Commit)
				}
				if src := tr.Status.Provenance.RefSource; src == nil || !strings.HasPrefix(src.URI, uri) {
					t.Errorf("provenance.refSource = %+v, want a URI starting %q", src, uri)
				}
			}
		})
	}
}

func resultOf(tr *v1.TaskRun, name string) string {
	for _, r := range tr.Status.Results {
		if r.Name == name {
			return r.Value.StringVal
		}
	}
	return ""
}

// tektonModule is the pinned Tekton module's directory.
func tektonModule(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tektoncd/pipeline").Output()
	if err != nil {
		t.Fatalf("find the Tekton module: %v", err)
	}
	return strings.TrimSpace(string(out))
}
