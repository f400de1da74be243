package remotes

import (
	"io"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// ResolverExamples are the resolver examples of Tekton's examples/v1 (its
// **/*resolver*.yaml) that Examples serves, each with what the refSource
// of its resolved Task or StepAction is (a key of Examples.Sources). The
// others are left out: pipelineruns/no-ci/git-resolver-custom-*.yaml ask a
// GitHub API server (scmType), pipelineruns/no-ci/hub-resolver.yaml runs
// the catalog's buildpacks Pipeline, the no-ci cluster-resolver examples
// name objects that exist nowhere, and pipelineruns/no-ci/git-resolver.yaml
// asks a volumeClaimTemplate of 1Gi and the real catalog's git-clone.
var ResolverExamples = map[string]string{
	"pipelineruns/beta/git-resolver.yaml":              "catalog",
	"pipelineruns/beta/http-resolver.yaml":             "raw",
	"pipelineruns/beta/http-resolver-credentials.yaml": "raw",
	"taskruns/beta/git-resolver.yaml":                  "catalog",
	"taskruns/beta/bundles-resolver.yaml":              "bundle",
	"taskruns/beta/hub-resolver.yaml":                  "hub",
	"taskruns/beta/stepaction-git-resolver.yaml":       "catalog",
}

// Examples stands in for every place Tekton's resolver examples fetch
// from: the catalog's git repository, raw.githubusercontent.com (with the
// basic auth the credentials example sends), ghcr.io's catalog bundle,
// Artifact Hub, and the repositories the examples' Task clones.
type Examples struct {
	// Source is the repository the examples' runs clone, at SourceURL.
	Source    Repo
	SourceURL string
	// HubURL is the Artifact Hub stand-in (ARTIFACT_HUB_API).
	HubURL string
	// Sources are what each stand-in's refSource URI starts with, by the
	// names ResolverExamples gives.
	Sources map[string]string
	// URLs rewrites the examples' URLs to the stand-ins; nothing else.
	URLs *strings.Replacer
}

// NewExamples serves task as the catalog's git-clone 0.10 Task and
// stepAction as its git-clone 0.1 StepAction, until the test ends; gitURL
// is how a repository is reached (Repo.FileURL in-process, GitDaemon for a
// cluster's resolvers).
func NewExamples(t testing.TB, task, stepAction string, gitURL func(testing.TB, Repo) string) *Examples {
	t.Helper()
	source := GitRepo(t, map[string]string{"README": "nocode\n"})
	// The examples clone revisions main and master.
	Git(t, source.Dir, "branch", "master")
	catalog := gitURL(t, GitRepo(t, map[string]string{
		"task/git-clone/0.10/git-clone.yaml":      task,
		"stepaction/git-clone/0.1/git-clone.yaml": stepAction,
	}))
	raw := ServeHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && (u != "git" || p != "token") {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, task)
	}))
	var bundled v1.Task
	if err := yaml.Unmarshal([]byte(task), &bundled); err != nil {
		t.Fatalf("the stand-in Task: %v", err)
	}
	bundled.TypeMeta = metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "Task"}
	bundle := Registry(t) + "/tasks/git-clone:v1"
	PushBundle(t, bundle, &bundled)
	e := &Examples{Source: source, SourceURL: gitURL(t, source), HubURL: ArtifactHub(t, "git-clone", "0.10.0", task)}
	e.Sources = map[string]string{
		"catalog": "git+" + catalog,
		"raw":     raw,
		"bundle":  strings.TrimSuffix(bundle, ":v1"),
		"hub":     e.HubURL + ArtifactHubPackage("tekton-catalog-tasks", "git-clone") + "/0.10.0",
	}
	e.URLs = strings.NewReplacer(
		"https://github.com/tektoncd/catalog.git", catalog,
		"https://github.com/kelseyhightower/nocode", e.SourceURL,
		"https://github.com/tektoncd/pipeline.git", e.SourceURL,
		"https://github.com/tektoncd/catalog", e.SourceURL,
		"https://raw.githubusercontent.com/tektoncd/catalog/main/task/git-clone/0.10/git-clone.yaml", raw+"/git-clone.yaml",
		"ghcr.io/tektoncd/catalog/upstream/tasks/git-clone@sha256:65e61544c5870c8828233406689d812391735fd4100cb444bbd81531cb958bb3", bundle,
	)
	return e
}

// Split rewrites an example's URLs and splits it into its runs and the
// other documents they need (a Secret, say).
func (e *Examples) Split(example string) (runs, others []string) {
	for _, doc := range strings.Split(e.URLs.Replace(example), "\n---\n") {
		if strings.Contains(doc, "\nkind: TaskRun") || strings.Contains(doc, "\nkind: PipelineRun") {
			runs = append(runs, doc)
		} else if strings.TrimSpace(doc) != "" {
			others = append(others, doc)
		}
	}
	return runs, others
}

// OnlyStepSource is the refSource URI of tr's one step (a StepAction's), or
// "" when tr has not exactly one step or the step has none.
func OnlyStepSource(tr *v1.TaskRun) string {
	if len(tr.Status.Steps) != 1 || tr.Status.Steps[0].Provenance == nil || tr.Status.Steps[0].Provenance.RefSource == nil {
		return ""
	}
	return tr.Status.Steps[0].Provenance.RefSource.URI
}
