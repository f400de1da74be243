package compile

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	prresources "github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"

	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

const matrixRun = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: mx
spec:
  params:
  - name: versions
    value: ["1.0", "2.0"]
  pipelineSpec:
    params:
    - name: versions
      type: array
    tasks:
    - name: fetch
      taskSpec:
        steps: [{image: busybox, script: "true"}]
    - name: build
      runAfter: [fetch]
      retries: 1
      params:
      - name: flags
        value: -v
      matrix:
        params:
        - name: platform
          value: [linux, mac]
        - name: browser
          value: [chrome, "$(context.pipelineTask.retries)"]
        include:
        - name: extra
          params:
          - {name: platform, value: linux}
          - {name: url, value: u}
      taskSpec:
        params:
        - name: platform
        - name: browser
        - {name: url, default: ""}
        - name: flags
        results: [{name: out}]
        steps:
        - image: $(params.platform)-image
          script: echo $(params.browser) $(context.taskRun.name)
    - name: single
      matrix:
        params: [{name: v, value: [only]}]
      taskSpec:
        params: [{name: v}]
        steps: [{image: busybox, script: echo $(params.v)}]
    - name: none
      matrix:
        params: [{name: v, value: []}]
      taskSpec:
        params: [{name: v}]
        steps: [{image: busybox, script: "exit 1"}]
    - name: after
      runAfter: [build, single]
      params:
      - {name: count, value: $(tasks.build.matrix.length)}
      - {name: outs, value: $(tasks.build.matrix.out.length)}
      taskSpec:
        params: [{name: count}, {name: outs}]
        steps: [{image: busybox, script: "true"}]
    finally:
    - name: report
      matrix:
        params:
        - name: version
          value: $(params.versions[*])
      taskSpec:
        params: [{name: version}]
        steps: [{image: busybox, script: echo $(params.version)}]
`

func TestMatrixFansOut(t *testing.T) {
	c := mustCompile(t, matrixRun, Options{})
	p := c.Plan
	var names []string
	for _, tk := range p.GetTasks() {
		names = append(names, tk.GetName())
	}
	diff(t, "plan tasks", names, []string{"fetch", "build-0", "build-1", "build-2", "build-3", "single", "none", "after"})

	// Tekton's TaskRun names: CountCombinations of them, "-INDEX" only when
	// there are several. createTaskRuns fans out before it applies the
	// contexts: $(context.pipelineTask.retries) stays in a combination.
	wantNames := prresources.GetNamesOfTaskRuns(nil, "build", "mx", 4)
	combos := [][]*planpb.Param{
		{{Name: "browser", Value: str("chrome")}, {Name: "platform", Value: str("linux")}, {Name: "url", Value: str("u")}},
		{{Name: "browser", Value: str("chrome")}, {Name: "platform", Value: str("mac")}},
		{{Name: "browser", Value: str("$(context.pipelineTask.retries)")}, {Name: "platform", Value: str("linux")}, {Name: "url", Value: str("u")}},
		{{Name: "browser", Value: str("$(context.pipelineTask.retries)")}, {Name: "platform", Value: str("mac")}},
	}
	uids := map[string]bool{}
	for i := range 4 {
		name := fmt.Sprintf("build-%d", i)
		tk := planTask(t, p, name)
		diff(t, name+" matrix", tk.GetMatrix(), &planpb.Matrix{PipelineTask: "build", Index: int32(i), Combination: int32(len(combos[i])), Length: 4})
		if tk.GetTaskRunName() != wantNames[i] {
			t.Errorf("%s: TaskRun %q, want %q", name, tk.GetTaskRunName(), wantNames[i])
		}
		diff(t, name+" params", tk.GetParams(), append(combos[i], &planpb.Param{Name: "flags", Value: str("-v")}))
		diff(t, name+" run_after", tk.GetRunAfter(), []string{"fetch"})
		if got := tk.GetLabels()[pipeline.PipelineTaskLabelKey]; got != "build" {
			t.Errorf("%s: pipelineTask label %q", name, got)
		}
		if got := tk.GetContext()["context.taskRun.name"]; got != wantNames[i] {
			t.Errorf("%s: context.taskRun.name %q", name, got)
		}
		uids[tk.GetContext()["context.taskRun.uid"]] = true
		if tk.GetRetries() != 1 {
			t.Errorf("%s: retries %d", name, tk.GetRetries())
		}
		tr := c.TaskRuns[name]
		if tr == nil || tr.Name != wantNames[i] || len(tr.Spec.Params) != len(combos[i])+1 {
			t.Errorf("%s: compiled TaskRun %+v", name, tr)
		}
		if c.TaskSpecs[name] == nil {
			t.Errorf("%s: no TaskSpec", name)
		}
	}
	if len(uids) != 4 {
		t.Errorf("TaskRun uids %v: want 4 distinct", uids)
	}

	single := planTask(t, p, "single")
	if single.GetTaskRunName() != "mx-single" || single.GetMatrix().GetPipelineTask() != "single" {
		t.Errorf("single: TaskRun %q, matrix %v", single.GetTaskRunName(), single.GetMatrix())
	}
	none := planTask(t, p, "none")
	if !none.GetMatrix().GetEmpty() || len(none.GetSpec().GetSteps()) != 0 || c.TaskRuns["none"] != nil {
		t.Errorf("none: %v", none)
	}
	after := planTask(t, p, "after")
	diff(t, "after run_after", after.GetRunAfter(), []string{"build-0", "build-1", "build-2", "build-3", "single"})
	// Matrix context variables are the supervisor's, as the reconciler
	// substitutes them when it creates the TaskRun.
	diff(t, "after params", after.GetParams(), []*planpb.Param{
		{Name: "count", Value: str("$(tasks.build.matrix.length)")}, {Name: "outs", Value: str("$(tasks.build.matrix.out.length)")},
	})

	var finals []string
	for _, tk := range p.GetFinally() {
		finals = append(finals, tk.GetName()+"="+tk.GetParams()[0].GetValue().GetStringValue())
	}
	diff(t, "finally", finals, []string{"report-0=1.0", "report-1=2.0"})
}

func TestMatrixInvalid(t *testing.T) {
	many := make([]string, 17)
	for i := range many {
		many[i] = fmt.Sprintf("v%d", i)
	}
	list := "[" + strings.Join(many, ", ") + "]"
	cases := []struct {
		name, tasks, field, msg string
	}{
		{
			name: "more combinations than default-max-matrix-combinations-count",
			tasks: `
    - name: a
      matrix:
        params: [{name: x, value: ` + list + `}, {name: z, value: ` + list + `}]
      taskSpec:
        params: [{name: x}, {name: z}]
        steps: [{image: busybox, script: "true"}]`,
			field: "spec.pipelineSpec.tasks[0].matrix", msg: "expected 0 <= 289 <= 256",
		},
		{
			name: "instance named like another task",
			tasks: `
    - name: a
      matrix:
        params: [{name: x, value: [p, q]}]
      taskSpec:
        params: [{name: x}]
        steps: [{image: busybox, script: "true"}]
    - name: a-1
      taskSpec:
        steps: [{image: busybox, script: "true"}]`,
			field: "spec.pipelineSpec.tasks[0].matrix", msg: `matrixed task "a" fans out into a TaskRun named like task "a-1"`,
		},
		{
			name: "run-time TaskRun named like another task",
			tasks: `
    - name: a
      taskSpec:
        results: [{name: r, type: array}]
        steps: [{image: busybox, script: "true"}]
    - name: b
      matrix:
        params: [{name: x, value: "$(tasks.a.results.r[*])"}]
      taskSpec:
        params: [{name: x}]
        steps: [{image: busybox, script: "true"}]
    - name: b-12
      taskSpec:
        steps: [{image: busybox, script: "true"}]`,
			field: "spec.pipelineSpec.tasks[1].matrix", msg: `matrixed task "b" may fan out into a TaskRun named like task "b-12"`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: mx
spec:
  pipelineSpec:
    tasks:` + tc.tasks + "\n"
			_, err := compileYAML(t, in, Options{})
			var le *load.Error
			if !errors.As(err, &le) {
				t.Fatalf("error %v, want a *load.Error", err)
			}
			if le.Field != tc.field || !strings.Contains(le.Msg, tc.msg) {
				t.Errorf("error {Field: %q, Msg: %q}, want field %q and a message containing %q", le.Field, le.Msg, tc.field, tc.msg)
			}
		})
	}
}

// A matrix fed by task results is one plan task, which the supervisor fans
// out at run time; the run cannot be a Pod, and PodError says where.
func TestMatrixFedByResults(t *testing.T) {
	c := mustCompile(t, `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: mx
spec:
  pipelineSpec:
    tasks:
    - name: a
      taskSpec:
        results: [{name: list, type: array}, {name: s}]
        steps: [{image: busybox, script: "true"}]
    - name: b
      params: [{name: p, value: fixed}]
      matrix:
        params:
        - {name: x, value: "$(tasks.a.results.list[*])"}
        - {name: w, value: [one, two]}
        include:
        - name: extra
          params: [{name: z, value: $(tasks.a.results.s)}]
      taskSpec:
        params: [{name: x}, {name: w}, {name: z, default: ""}, {name: p}]
        steps: [{image: busybox, script: echo $(params.x)}]
    - {name: after, runAfter: [b], taskSpec: {steps: [{image: busybox, script: "true"}]}}
`, Options{})
	b := planTask(t, c.Plan, "b")
	diff(t, "b matrix", b.GetMatrix(), &planpb.Matrix{PipelineTask: "b", Length: 2, RunTime: &planpb.RunTimeMatrix{
		Params:  []*planpb.Param{{Name: "x", Value: str("$(tasks.a.results.list[*])")}, {Name: "w", Value: arr("one", "two")}},
		Include: []*planpb.MatrixInclude{{Name: "extra", Params: []*planpb.Param{{Name: "z", Value: str("$(tasks.a.results.s)")}}}},
	}})
	diff(t, "b params", b.GetParams(), []*planpb.Param{{Name: "p", Value: str("fixed")}})
	diff(t, "b run_after", b.GetRunAfter(), []string{"a"})
	diff(t, "after run_after", planTask(t, c.Plan, "after").GetRunAfter(), []string{"b"})
	var le *load.Error
	if err := c.PodError(); !errors.As(err, &le) || le.Doc != "in.yaml#1 (PipelineRun/mx)" || le.Field != "spec.pipelineSpec.tasks[1].matrix.params[0]" ||
		!strings.Contains(le.Msg, "a Pod's containers are fixed when it is created") {
		t.Errorf("PodError() = %v, want a *load.Error at spec.pipelineSpec.tasks[1].matrix.params[0]", err)
	}
	if err := mustCompile(t, matrixRun, Options{}).PodError(); err != nil {
		t.Errorf("a static matrix: PodError() = %v", err)
	}
}
