package cluster

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	resolutionv1beta1 "github.com/tektoncd/pipeline/pkg/apis/resolution/v1beta1"
	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/remotes"
	"github.com/e7763abc/pod-runner/test/tektonlocal"
)

// clusterPipeline comes from git. Its tasks' Tasks come from an OCI bundle,
// the same repository (a Task whose step is a StepAction served over http)
// and the cluster.
const clusterPipeline = `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: from-git}
spec:
  params: [{name: bundle}, {name: repo}, {name: action}, {name: namespace}]
  results: [{name: greeting, value: "$(tasks.greet.results.out) $(tasks.stored.results.word)"}]
  tasks:
  - name: make
    taskRef:
      resolver: bundles
      params: [{name: bundle, value: $(params.bundle)}, {name: name, value: maker}, {name: kind, value: task}]
  - name: greet
    params: [{name: word, value: $(tasks.make.results.word)}, {name: action, value: $(params.action)}]
    taskRef:
      resolver: git
      params: [{name: url, value: $(params.repo)}, {name: revision, value: main}, {name: pathInRepo, value: tasks/greet.yaml}]
  - name: stored
    taskRef:
      resolver: cluster
      params: [{name: kind, value: task}, {name: name, value: stored}, {name: namespace, value: $(params.namespace)}]
`

const clusterGreet = `apiVersion: tekton.dev/v1
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

const clusterStepAction = `apiVersion: tekton.dev/v1beta1
kind: StepAction
metadata: {name: say}
spec:
  params: [{name: text}, {name: dest}]
  image: localhost/busybox:pod-runner
  env: [{name: TEXT, value: $(params.text)}, {name: DEST, value: $(params.dest)}]
  script: printf '%s' "$TEXT" > "$DEST"
`

const storedTask = `apiVersion: tekton.dev/v1
kind: Task
metadata: {name: stored}
spec:
  results: [{name: word}]
  steps: [{name: write, image: localhost/busybox:pod-runner, script: "printf again > $(results.word.path)"}]
`

// resolutionServices are the services a test's refs point at, on this
// machine: a repository through git daemon, a registry holding the maker
// Task as a bundle, the StepAction over http.
type resolutionServices struct {
	repo     remotes.Repo
	repoURL  string
	bundle   string
	action   string
	notFound string
}

func startResolutionServices(t *testing.T) resolutionServices {
	repo := remotes.GitRepo(t, map[string]string{"pipeline.yaml": clusterPipeline, "tasks/greet.yaml": clusterGreet})
	s := resolutionServices{repo: repo, repoURL: remotes.GitDaemon(t, repo), bundle: remotes.Registry(t) + "/tasks/maker:v1",
		action: remotes.Serve(t, clusterStepAction) + "/say.yaml", notFound: remotes.ServeHandler(t, http.NotFoundHandler())}
	remotes.PushBundle(t, s.bundle, &v1.Task{
		TypeMeta:   metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "Task"},
		ObjectMeta: metav1.ObjectMeta{Name: "maker"},
		Spec: v1.TaskSpec{
			Results: []v1.TaskResult{{Name: "word"}},
			Steps:   []v1.Step{{Name: "make", Image: "localhost/busybox:pod-runner", Script: "printf world > $(results.word.path)"}},
		},
	})
	return s
}

func resolvedRun(name, ns string, s resolutionServices, pathInRepo string) string {
	return fmt.Sprintf(`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: %s}
spec:
  managedBy: pod-runner.dev/controller
  taskRunTemplate: {serviceAccountName: default}
  params:
  - {name: bundle, value: %q}
  - {name: repo, value: %q}
  - {name: action, value: %q}
  - {name: namespace, value: %q}
  pipelineRef:
    resolver: git
    params: [{name: url, value: %q}, {name: revision, value: main}, {name: pathInRepo, value: %s}]
`, name, s.bundle, s.repoURL, s.action, ns, s.repoURL, pathInRepo)
}

// TestControllerResolution: with Tekton's resolvers deployment (the pinned
// release, on the host) answering, a delegated PipelineRun whose Pipeline
// comes from git (git daemon on loopback), one Task from an OCI bundle on a
// loopback registry, one from the same repository with a StepAction over
// http, and one from the cluster runs to Succeeded in one Pod, its status
// and its TaskRuns' recording where each came from as Tekton does. Each way
// resolution fails ends a run with Tekton's reason and no Pod; so does a
// resolver that never answers, at the run's timeout (without Tekton's
// controller nothing else times the request out); a PodPipeline group's
// remote Task resolves the same way.
func TestControllerResolution(t *testing.T) {
	enabled(t)
	installCRDs(t)
	installPodPipelineCRD(t)
	ns := kube.Namespace(t, "pr-resolve")
	s := startResolutionServices(t)
	kube.Kubectl(t, storedTask, "apply", "-n", ns, "-f", "-")
	tektonlocal.StartResolvers(t, tektonlocal.ResolversOptions{})
	kube.StartController(t, ns)

	groupSpec := fmt.Sprintf(`  pipelineSpec:
    tasks:
    - name: greet
      params: [{name: word, value: group}, {name: action, value: %q}]
      taskRef:
        resolver: git
        params: [{name: url, value: %q}, {name: revision, value: main}, {name: pathInRepo, value: tasks/greet.yaml}]
    results: [{name: out, value: $(tasks.greet.results.out)}]
`, s.action, s.repoURL)
	runs := []string{
		resolvedRun("remote", ns, s, "pipeline.yaml"),
		resolvedRun("no-file", ns, s, "nope.yaml"),
		`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: http-404}
spec:
  managedBy: pod-runner.dev/controller
  pipelineSpec:
    tasks:
    - name: t
      taskRef: {resolver: http, params: [{name: url, value: "` + s.notFound + `/task.yaml"}]}
`,
		`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: no-registry}
spec:
  managedBy: pod-runner.dev/controller
  pipelineSpec:
    tasks:
    - name: t
      taskRef: {resolver: bundles, params: [{name: bundle, value: "` + remotes.ClosedAddr(t) + `/nothing:1"}, {name: name, value: t}, {name: kind, value: task}]}
`,
		`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: never}
spec:
  managedBy: pod-runner.dev/controller
  timeouts: {pipeline: 15s}
  pipelineRef: {resolver: nobody, params: [{name: x, value: y}]}
`,
		customRunYAML("group", "", groupSpec),
	}
	kube.Kubectl(t, strings.Join(runs, "\n---\n"), "-n", ns, "create", "-f", "-")

	for _, name := range []string{"remote", "no-file", "http-404", "no-registry", "never"} {
		kube.WaitFor(t, 4*time.Minute, name+" to end", func() bool { return getPipelineRun(t, ns, name).IsDone() })
	}
	kube.WaitFor(t, 3*time.Minute, "the CustomRun to end", func() bool { return getCustomRun(t, ns, "group").IsDone() })

	t.Run("resolved", func(t *testing.T) {
		pr := getPipelineRun(t, ns, "remote")
		if !pr.IsSuccessful() {
			t.Fatalf("remote ended %+v", pr.Status.Conditions)
		}
		if len(pr.Status.Results) != 1 || pr.Status.Results[0].Value.StringVal != "hello world again" {
			t.Errorf("results %+v, want greeting=hello world again", pr.Status.Results)
		}
		if got := pr.Labels["tekton.dev/pipeline"]; got != "from-git" {
			t.Errorf("label tekton.dev/pipeline = %q, want the resolved Pipeline's name", got)
		}
		if pr.Status.PipelineSpec == nil || len(pr.Status.PipelineSpec.Tasks) != 3 {
			t.Errorf("status.pipelineSpec %+v, want the resolved Pipeline's", pr.Status.PipelineSpec)
		}
		src := pr.Status.Provenance.RefSource
		if src == nil || src.URI != "git+"+s.repoURL || src.Digest["sha1"] != s.repo.Commit || src.EntryPoint != "pipeline.yaml" {
			t.Errorf("provenance.refSource %+v, want git+%s@%s pipeline.yaml", src, s.repoURL, s.repo.Commit)
		}
		trs := taskRuns(t, ns, "remote")
		for task, want := range map[string]string{"make": strings.TrimSuffix(s.bundle, ":v1"), "greet": "git+" + s.repoURL, "stored": "/apis/tekton.dev/v1/namespaces/" + ns + "/task/stored@"} {
			tr := trs[task]
			if tr == nil {
				t.Errorf("no TaskRun for %s", task)
				continue
			}
			if tr.Status.Provenance == nil || tr.Status.Provenance.RefSource == nil || !strings.HasPrefix(tr.Status.Provenance.RefSource.URI, want) {
				t.Errorf("TaskRun %s provenance %+v, want a refSource URI starting %q", task, tr.Status.Provenance, want)
			}
			if tr.Spec.TaskRef == nil || tr.Spec.TaskRef.Resolver == "" || tr.Status.TaskSpec == nil {
				t.Errorf("TaskRun %s spec.taskRef %+v, status.taskSpec set %v: want the resolver's ref and the resolved spec", task, tr.Spec.TaskRef, tr.Status.TaskSpec != nil)
			}
		}
		if greet := trs["greet"]; greet != nil {
			if steps := greet.Status.Steps; len(steps) != 1 || steps[0].Provenance == nil || steps[0].Provenance.RefSource == nil || steps[0].Provenance.RefSource.URI != s.action {
				t.Errorf("TaskRun greet status.steps %+v, want the StepAction's refSource (its URL) in the step's provenance", steps)
			}
		}
		if n := len(podsOf(t, ns, "remote")); n != 1 {
			t.Errorf("%d pods for remote, want 1", n)
		}
		rrs := &resolutionv1beta1.ResolutionRequestList{}
		if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "resolutionrequests", "-o", "json")), rrs); err != nil {
			t.Fatal(err)
		}
		owned := 0
		for _, rr := range rrs.Items {
			for _, o := range rr.OwnerReferences {
				if o.UID == pr.UID {
					owned++
					if o.Controller != nil && *o.Controller {
						t.Errorf("ResolutionRequest %s: the run is its controller (Tekton's controller would take the run)", rr.Name)
					}
				}
			}
		}
		// The Pipeline, three Tasks, the StepAction.
		if owned != 5 {
			t.Errorf("%d ResolutionRequests owned by the run, want 5", owned)
		}
	})

	for _, tc := range []struct{ run, reason, says string }{
		{"no-file", v1.PipelineRunReasonCouldntGetPipeline.String(), "nope.yaml"},
		{"http-404", v1.PipelineRunReasonCouldntGetTask.String(), "404"},
		{"no-registry", v1.PipelineRunReasonCouldntGetTask.String(), "connection refused"},
		{"never", v1.PipelineRunReasonTimedOut.String(), `PipelineRun "never" failed to finish within "15s"`},
	} {
		t.Run(tc.run, func(t *testing.T) {
			pr := getPipelineRun(t, ns, tc.run)
			c := pr.Status.GetCondition("Succeeded")
			if c == nil || !c.IsFalse() || c.Reason != tc.reason || !strings.Contains(c.Message, tc.says) {
				t.Errorf("condition %+v, want False/%s saying %q", c, tc.reason, tc.says)
			}
			if n := len(podsOf(t, ns, tc.run)); n != 0 {
				t.Errorf("%d pods, want none", n)
			}
		})
	}

	t.Run("group", func(t *testing.T) {
		run := getCustomRun(t, ns, "group")
		if !run.IsSuccessful() {
			t.Fatalf("group ended %+v", run.Status.Conditions)
		}
		if out, _ := result(run, "out"); out != "hello group" {
			t.Errorf("group result out = %q, want hello group", out)
		}
	})
}

// podsOf are the Pods of the run called name (its label).
func podsOf(t *testing.T, ns, name string) []corev1.Pod {
	t.Helper()
	pods := &corev1.PodList{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pods", "-l", "tekton.dev/pipelineRun="+name, "-o", "json")), pods); err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

// TestControllerResolutionTimeout: with Tekton's controller running, as in
// a real installation, a request no resolver answers is failed by its
// ResolutionRequest reconciler after default-maximum-resolution-timeout,
// and the delegated run ends with Tekton's reason and message and no Pod;
// a run whose own timeout comes first ends PipelineRunTimeout. Tekton's
// controller, given the same run, ends it with the same reason and
// resolver message; it never takes the delegated runs over, though they
// own requests it reconciles.
func TestControllerResolutionTimeout(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-resolve")
	tekton := tektonlocal.Start(t, tektonlocal.Options{Namespace: ns, Defaults: map[string]string{"default-maximum-resolution-timeout": "10s"}})
	kube.StartController(t, ns)
	run := func(name, timeout string) string {
		return fmt.Sprintf(`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: %s}
spec:
  managedBy: pod-runner.dev/controller
  timeouts: {pipeline: %s}
  pipelineRef: {resolver: nobody, params: [{name: run, value: %s}]}
`, name, timeout, name)
	}
	// The oracle: the same run left to Tekton's controller.
	tektons := strings.Replace(run("tektons", "10m"), "  managedBy: pod-runner.dev/controller\n", "", 1)
	kube.Kubectl(t, run("unanswered", "10m")+"---\n"+run("short", "5s")+"---\n"+tektons, "-n", ns, "create", "-f", "-")
	for _, name := range []string{"unanswered", "short", "tektons"} {
		kube.WaitFor(t, 2*time.Minute, name+" to end", func() bool { return getPipelineRun(t, ns, name).IsDone() })
	}
	want := getPipelineRun(t, ns, "tektons").Status.GetCondition("Succeeded")
	if want == nil || want.Reason != v1.PipelineRunReasonCouldntGetPipeline.String() || !strings.Contains(want.Message, "resolution took longer than global timeout of 10s") {
		t.Fatalf("Tekton's controller ended the same run %+v: the case is wrong", want)
	}
	for _, tc := range []struct{ run, reason, says string }{
		{"unanswered", v1.PipelineRunReasonCouldntGetPipeline.String(), "resolution took longer than global timeout of 10s"},
		{"short", v1.PipelineRunReasonTimedOut.String(), `PipelineRun "short" failed to finish within "5s"`},
	} {
		pr := getPipelineRun(t, ns, tc.run)
		c := pr.Status.GetCondition("Succeeded")
		if c == nil || !c.IsFalse() || c.Reason != tc.reason || !strings.Contains(c.Message, tc.says) {
			t.Errorf("%s: condition %+v, want False/%s saying %q", tc.run, c, tc.reason, tc.says)
		} else if tc.run == "unanswered" {
			if tektons := strings.ReplaceAll(want.Message, "/tektons:", "/unanswered:"); c.Message != tektons {
				t.Errorf("message %q, want Tekton's %q", c.Message, tektons)
			}
		}
		if n := len(podsOf(t, ns, tc.run)); n != 0 {
			t.Errorf("%s: %d pods, want none", tc.run, n)
		}
	}
	log, err := os.ReadFile(tekton.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"unanswered", "short"} {
		if key := fmt.Sprintf(`"knative.dev/key":"%s/%s"`, ns, name); strings.Contains(string(log), key) {
			t.Errorf("Tekton's controller reconciled the delegated run %s (%s in its log)", name, key)
		}
	}
	if !strings.Contains(string(log), "resolution took longer than global timeout") && !strings.Contains(string(log), `"knative.dev/key":"`+ns+`/nobody-`) {
		t.Errorf("Tekton's controller never reconciled the requests: the test proves nothing about it")
	}
}

// exampleTask and exampleAction stand in for the catalog's git-clone Task
// and StepAction on the cluster: a Pod reaches nothing on this machine's
// loopback, so they report what they would clone instead of cloning it.
const exampleTask = `apiVersion: tekton.dev/v1
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
    image: localhost/busybox:pod-runner
    script: |
      printf '%s' "$(params.url)" > $(results.url.path)
      printf '%s' "$(params.revision)" > $(results.commit.path)
      touch $(workspaces.output.path)/cloned
`

const exampleAction = `apiVersion: tekton.dev/v1beta1
kind: StepAction
metadata: {name: git-clone}
spec:
  params: [{name: url}, {name: revision, default: ""}, {name: output-path}]
  image: localhost/busybox:pod-runner
  env: [{name: URL, value: $(params.url)}]
  script: test -n "$URL"
`

// TestResolverExamplesOnCluster runs Tekton's resolver examples
// (remotes.ResolverExamples), their URLs rewritten to stand-ins on this
// machine, delegated to pod-runner (kube.Delegate: a TaskRun as a
// PipelineRun of one task, a volumeClaimTemplate as an emptyDir), with
// Tekton's resolvers
// deployment answering. Each must succeed with the rewritten URL and
// record where its Task or StepAction came from.
func TestResolverExamplesOnCluster(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-examples")
	ex := remotes.NewExamples(t, exampleTask, exampleAction, remotes.GitDaemon)
	tektonlocal.StartResolvers(t, tektonlocal.ResolversOptions{Env: []string{"ARTIFACT_HUB_API=" + ex.HubURL}})
	kube.StartController(t, ns)
	dir := filepath.Join(tektonModuleDir(t), "examples", "v1")

	type created struct{ example, run, source string }
	var all []created
	var docs []string
	for name, source := range remotes.ResolverExamples {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		runs, others := ex.Split(string(b))
		docs = append(docs, others...)
		for i, doc := range runs {
			obj := map[string]any{}
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			obj = kube.Delegate(obj)
			runName := fmt.Sprintf("ex-%d-%d", len(all), i)
			meta := obj["metadata"].(map[string]any)
			delete(meta, "generateName")
			meta["name"] = runName
			out, err := yaml.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			docs = append(docs, string(out))
			all = append(all, created{name, runName, source})
		}
	}
	kube.Kubectl(t, strings.Join(docs, "\n---\n"), "-n", ns, "create", "-f", "-")
	for _, c := range all {
		t.Run(c.example, func(t *testing.T) {
			kube.WaitFor(t, 3*time.Minute, c.run+" to end", func() bool { return getPipelineRun(t, ns, c.run).IsDone() })
			pr := getPipelineRun(t, ns, c.run)
			if !pr.IsSuccessful() {
				t.Fatalf("%s ended %+v", c.run, pr.Status.Conditions)
			}
			trs := taskRuns(t, ns, c.run)
			if len(trs) != 1 {
				t.Fatalf("%d TaskRuns, want 1", len(trs))
			}
			tr := trs["task"]
			for _, only := range trs {
				tr = only
			}
			uri := ex.Sources[c.source]
			if tr.Spec.TaskRef == nil {
				if src := remotes.OnlyStepSource(tr); src == "" || !strings.HasPrefix(src, uri) {
					t.Errorf("status.steps %+v, want the StepAction's refSource starting %q", tr.Status.Steps, uri)
				}
				return
			}
			if got := taskResult(tr, "url"); got != ex.SourceURL {
				t.Errorf("url result %q, want the rewritten repository %q", got, ex.SourceURL)
			}
			if src := tr.Status.Provenance.RefSource; src == nil || !strings.HasPrefix(src.URI, uri) {
				t.Errorf("provenance.refSource = %+v, want a URI starting %q", src, uri)
			}
		})
	}
}

func taskResult(tr *v1.TaskRun, name string) string {
	for _, r := range tr.Status.Results {
		if r.Name == name {
			return r.Value.StringVal
		}
	}
	return ""
}

// tektonModuleDir is the pinned Tekton module's directory.
func tektonModuleDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tektoncd/pipeline").Output()
	if err != nil {
		t.Fatalf("find the Tekton module: %v", err)
	}
	return strings.TrimSpace(string(out))
}
