package compile

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	prresources "github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"

	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

var alpha = map[string]string{"enable-api-fields": "alpha"}

const childPipelines = `
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: inner}
spec:
  params: [{name: word, type: string}]
  workspaces: [{name: src}]
  results: [{name: out, value: $(tasks.show.results.said)}]
  tasks:
  - name: show
    params: [{name: word, value: $(params.word)}]
    workspaces: [{name: src, workspace: src, subPath: deeper}]
    taskSpec:
      params: [{name: word}]
      workspaces: [{name: src}]
      results: [{name: said}]
      steps:
      - {name: say, image: busybox, script: 'echo $(params.word) | tee $(results.said.path)'}
  - name: after
    runAfter: [show]
    taskSpec:
      steps: [{name: s, image: busybox, script: 'true'}]
  finally:
  - name: tidy
    taskSpec:
      steps: [{name: s, image: busybox, script: 'true'}]
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: outer, labels: {team: a}}
spec:
  params: [{name: greeting, type: string}]
  workspaces: [{name: shared}]
  tasks:
  - name: first
    taskSpec:
      steps: [{name: s, image: busybox, script: 'true'}]
  - name: child
    runAfter: [first]
    pipelineRef: {name: inner}
    params: [{name: word, value: $(params.greeting)}]
    workspaces: [{name: src, workspace: shared, subPath: sub}]
  - name: inline
    pipelineSpec:
      tasks:
      - name: hello
        taskSpec:
          steps: [{name: s, image: busybox, script: 'echo hi'}]
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: run, annotations: {note: kept}}
spec:
  pipelineRef: {name: outer}
  params: [{name: greeting, value: hello}]
  workspaces: [{name: shared, emptyDir: {}}]
`

// The child PipelineRun of a PipelineTask that runs a pipeline is the one
// Tekton's reconciler creates (createChildPipelineRun): named by
// GetNamesOfChildPipelineRuns, labelled and owned by its parent, the
// PipelineTask's params, the parent's binding under the child's workspace
// name with the subPaths joined; its tasks join the plan as CHILD.TASK.
func TestChildPipelineRun(t *testing.T) {
	c := mustCompile(t, childPipelines, Options{FeatureFlags: alpha})
	cc := c.Children["child"]
	if cc == nil {
		t.Fatalf("no child run compiled for pipeline task child: %v", c.Children)
	}
	pr, child := c.PipelineRun, cc.PipelineRun
	if want := prresources.GetNamesOfChildPipelineRuns(nil, "child", pr.Name, 1)[0]; child.Name != want {
		t.Errorf("child PipelineRun name = %q, want Tekton's %q", child.Name, want)
	}
	wantLabels := map[string]string{
		"team": "a", pipeline.PipelineLabelKey: "inner", pipeline.PipelineRunLabelKey: pr.Name,
		pipeline.PipelineRunUIDLabelKey: string(pr.UID), pipeline.PipelineTaskLabelKey: "child", pipeline.MemberOfLabelKey: v1.PipelineTasks,
	}
	for k, v := range wantLabels {
		if child.Labels[k] != v {
			t.Errorf("child label %s = %q, want %q", k, child.Labels[k], v)
		}
	}
	if child.Annotations["note"] != "kept" {
		t.Errorf("child annotations = %v, want the parent's", child.Annotations)
	}
	if o := child.OwnerReferences; len(o) != 1 || o[0].UID != pr.UID || o[0].Kind != "PipelineRun" {
		t.Errorf("child owner = %v, want its parent", o)
	}
	if p := child.Spec.Params; len(p) != 1 || p[0].Value.StringVal != "hello" {
		t.Errorf("child params = %v, want word=hello (the parent's param applied)", p)
	}
	if w := child.Spec.Workspaces; len(w) != 1 || w[0].Name != "src" || w[0].SubPath != "sub" || w[0].EmptyDir == nil {
		t.Errorf("child workspaces = %+v, want the parent's emptyDir as src, subPath sub", w)
	}
	if got := child.Spec.PipelineRef; got == nil || got.Name != "inner" {
		t.Errorf("child pipelineRef = %v, want inner", got)
	}
	if got := cc.Children; len(got) != 0 {
		t.Errorf("grandchildren = %v, want none", got)
	}
	if inline := c.Children["inline"]; inline == nil || inline.PipelineRun.Spec.PipelineSpec == nil {
		t.Errorf("the inline child has no pipelineSpec: %v", inline)
	}

	ct := planTask(t, c.Plan, "child")
	if ct.GetChild() == nil || ct.GetTaskRunName() != child.Name || !slices.Equal(ct.GetRunAfter(), []string{"first"}) {
		t.Fatalf("plan task child = %v, want a child pipeline named %s after first", ct, child.Name)
	}
	var names []string
	for _, t := range slices.Concat(ct.GetChild().GetTasks(), ct.GetChild().GetFinally()) {
		names = append(names, t.GetName()+"="+t.GetPipelineTask())
	}
	if want := []string{"child.show=show", "child.after=after", "child.tidy=tidy"}; !slices.Equal(names, want) {
		t.Errorf("child plan tasks = %v, want %v", names, want)
	}
	var show, after *planpb.Task
	for _, t := range ct.GetChild().GetTasks() {
		switch t.GetPipelineTask() {
		case "show":
			show = t
		case "after":
			after = t
		}
	}
	if !slices.Equal(after.GetRunAfter(), []string{"child.show"}) {
		t.Errorf("child.after runs after %v, want child.show", after.GetRunAfter())
	}
	if ws := show.GetWorkspaces(); len(ws) != 1 || ws[0].GetVolume() != "shared" || ws[0].GetSubPath() != "sub/deeper" {
		t.Errorf("child.show workspaces = %v, want the parent's volume shared at sub/deeper", ws)
	}
	if r := ct.GetChild().GetResults(); len(r) != 1 || r[0].GetValue().GetStringValue() != "$(tasks.show.results.said)" {
		t.Errorf("child results = %v, want out from show, by its name in the child", r)
	}
	tr := c.TaskRuns["child.show"]
	if tr == nil {
		t.Fatalf("no TaskRun for child.show: %v", c.TaskRuns)
	}
	if tr.Labels[pipeline.PipelineRunLabelKey] != child.Name || tr.OwnerReferences[0].UID != child.UID {
		t.Errorf("child.show's TaskRun belongs to %s (%v), want the child run", tr.Labels[pipeline.PipelineRunLabelKey], tr.OwnerReferences)
	}
	if want := prresources.GetNamesOfTaskRuns(nil, "show", child.Name, 1)[0]; tr.Name != want {
		t.Errorf("child.show's TaskRun name = %q, want Tekton's %q", tr.Name, want)
	}
	if len(c.Plan.GetVolumes()) != 1 {
		t.Errorf("plan volumes = %v, want the parent's one: a child run's storage is its parent's", c.Plan.GetVolumes())
	}
}

// A pipeline that runs itself, directly or through another, is refused
// before anything runs, naming both pipelines (Tekton's controller finds
// the cycle only when it creates the child run).
func TestChildPipelineCycles(t *testing.T) {
	for _, tc := range []struct{ name, in, doc, field string }{
		{"itself", `
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: a}
spec:
  tasks:
  - {name: again, pipelineRef: {name: a}}
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: run}
spec: {pipelineRef: {name: a}}
`, "in.yaml#1 (Pipeline/a)", "spec.tasks[0].pipelineRef"},
		{"through another", `
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: a}
spec:
  tasks:
  - {name: to-b, pipelineRef: {name: b}}
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: b}
spec:
  tasks:
  - {name: to-a, pipelineRef: {name: a}}
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: run}
spec: {pipelineRef: {name: a}}
`, "in.yaml#2 (Pipeline/b)", "spec.tasks[0].pipelineRef"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compileYAML(t, tc.in, Options{FeatureFlags: alpha})
			le := loadError(t, err)
			if le.Doc != tc.doc || le.Field != tc.field {
				t.Errorf("error at %s %s, want %s %s: %v", le.Doc, le.Field, tc.doc, tc.field, le)
			}
			for _, p := range []string{`"a"`, "cycle"} {
				if !strings.Contains(le.Msg, p) {
					t.Errorf("message %q lacks %s", le.Msg, p)
				}
			}
			if tc.name != "itself" && !strings.Contains(le.Msg, `"b"`) {
				t.Errorf("message %q does not name Pipeline b", le.Msg)
			}
			if le.Reason != v1.PipelineRunReasonCreateRunFailed.String() {
				t.Errorf("reason = %q, want %s", le.Reason, v1.PipelineRunReasonCreateRunFailed)
			}
		})
	}
}

func loadError(t *testing.T, err error) *load.Error {
	t.Helper()
	var le *load.Error
	if !errors.As(err, &le) {
		t.Fatalf("error = %v (%T), want a *load.Error", err, err)
	}
	return le
}

const childResults = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: cres}
spec:
  pipelineSpec:
    tasks:
    - name: child
      pipelineSpec:
        results: [{name: word, value: $(tasks.x.results.out)}]
        tasks:
        - name: x
          taskSpec:
            results: [{name: out}]
            steps: [{name: s, image: busybox, script: 'printf hi > $(results.out.path)'}]
    - name: use
      params: [{name: w, value: $(tasks.child.results.RESULT)}]
      taskSpec:
        params: [{name: w}]
        steps: [{name: s, image: busybox, script: 'echo $(params.w)'}]
`

// A child pipeline's results are its PipelineTask's (TEP-0056): the one
// rule of Tekton's validation relaxed, and a reference to a result the
// child does not declare still refused as Tekton refuses a Task's.
func TestChildPipelineResultReferences(t *testing.T) {
	c := mustCompile(t, strings.ReplaceAll(childResults, "RESULT", "word"), Options{FeatureFlags: alpha})
	if use := planTask(t, c.Plan, "use"); !slices.Contains(use.GetRunAfter(), "child") {
		t.Errorf("use runs after %v, want child (its result)", use.GetRunAfter())
	}
	_, err := compileYAML(t, strings.ReplaceAll(childResults, "RESULT", "nope"), Options{FeatureFlags: alpha})
	le := loadError(t, err)
	if le.Reason != v1.PipelineRunReasonInvalidTaskResultReference.String() || !strings.Contains(le.Msg, `"nope" is not a named result returned by pipeline task "child"`) {
		t.Errorf("error = %v (reason %s), want nope refused as an invalid result reference", le, le.Reason)
	}
}
