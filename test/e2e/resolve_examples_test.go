package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

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

// TestResolverExamples runs Tekton's own resolver examples with only their
// URLs rewritten to services on this machine: the catalog's git repository
// (a repository on disk), raw.githubusercontent.com (a loopback http server
// that wants the credentials example's basic auth), ghcr.io (a registry on
// loopback holding the catalog Task as a bundle), Artifact Hub (a loopback
// stand-in of its API) and the repository the Task clones. Each must succeed, clone that repository, and record where
// its Task came from.
func TestResolverExamples(t *testing.T) {
	src := remotes.GitRepo(t, map[string]string{"README": "nocode\n"})
	source, sourceCommit := src.FileURL(), src.Commit
	remotes.Git(t, src.Dir, "branch", "master")
	catalog := remotes.GitRepo(t, map[string]string{"task/git-clone/0.10/git-clone.yaml": gitClone}).FileURL()
	raw := remotes.ServeHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && (u != "git" || p != "token") {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, gitClone)
	}))
	var task v1.Task
	if err := yaml.Unmarshal([]byte(gitClone), &task); err != nil {
		t.Fatal(err)
	}
	task.TypeMeta = metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "Task"}
	bundle := remotes.Registry(t) + "/tasks/git-clone:v1"
	remotes.PushBundle(t, bundle, &task)
	hub := remotes.ArtifactHub(t, "git-clone", "0.10.0", gitClone)
	pkg := remotes.ArtifactHubPackage("tekton-catalog-tasks", "git-clone")
	t.Setenv("ARTIFACT_HUB_API", hub)

	urls := strings.NewReplacer(
		"https://github.com/tektoncd/catalog.git", catalog,
		"https://github.com/kelseyhightower/nocode", source,
		"https://github.com/tektoncd/pipeline.git", source,
		"https://github.com/tektoncd/catalog", source,
		"https://raw.githubusercontent.com/tektoncd/catalog/main/task/git-clone/0.10/git-clone.yaml", raw+"/git-clone.yaml",
		"ghcr.io/tektoncd/catalog/upstream/tasks/git-clone@sha256:65e61544c5870c8828233406689d812391735fd4100cb444bbd81531cb958bb3", bundle,
	)
	examples := map[string]string{ // example → what its refSource URI starts with
		"pipelineruns/beta/git-resolver.yaml":              "git+" + catalog,
		"pipelineruns/beta/http-resolver.yaml":             raw,
		"pipelineruns/beta/http-resolver-credentials.yaml": raw,
		"taskruns/beta/git-resolver.yaml":                  "git+" + catalog,
		"taskruns/beta/bundles-resolver.yaml":              strings.TrimSuffix(bundle, ":v1"),
		"taskruns/beta/hub-resolver.yaml":                  hub + pkg + "/0.10.0",
	}
	dir := filepath.Join(tektonModule(t), "examples", "v1")
	for name, uri := range examples {
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			// One invocation per run the file holds, with its other documents.
			var runs, others []string
			for _, doc := range strings.Split(urls.Replace(string(src)), "\n---\n") {
				if strings.Contains(doc, "\nkind: TaskRun") || strings.Contains(doc, "\nkind: PipelineRun") {
					runs = append(runs, doc)
				} else {
					others = append(others, doc)
				}
			}
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
				if got := resultOf(tr, "commit"); got != sourceCommit {
					t.Errorf("cloned commit %q, want %q (the rewritten repository's)", got, sourceCommit)
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
