package compile

import (
	"strings"
	"testing"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// A task is hermetic when the TaskRun Tekton would create carries
// experimental.tekton.dev/execution-mode: hermetic (docs/hermetic.md).
// Where that annotation comes from follows docs/labels.md ("Annotations
// propagation": Pipeline → PipelineRun → TaskRuns; Task → TaskRun, the
// TaskRun winning) and docs/pipelineruns.md (taskRunSpecs metadata >
// PipelineRun metadata > the pipeline task's taskSpec metadata).
func TestHermeticFromAnnotations(t *testing.T) {
	const task = `
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: build
  annotations: {ANNOTATION}
spec:
  steps:
  - {name: s, image: busybox, script: "true", env: [{name: TEKTON_HERMETIC, value: "0"}]}
  sidecars:
  - {name: db, image: busybox, script: "true"}
`
	const pipeline = `
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
  annotations: {PIPELINE}
spec:
  tasks:
  - name: ref
    taskRef: {name: build}
  - name: inline
    taskSpec:
      metadata:
        annotations: {TASKSPEC}
      steps: [{name: s, image: busybox, script: "true"}]
  finally:
  - name: last
    taskSpec:
      steps: [{name: s, image: busybox, script: "true"}]
`
	const pipelineRun = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: pr
  annotations: {RUN}
spec:
  pipelineRef: {name: p}
  taskRunSpecs: [{TASKRUNSPECS}]
`
	const hermetic = `{experimental.tekton.dev/execution-mode: hermetic}`
	for _, tc := range []struct {
		name string
		// Replacements of the {...} placeholders; "{}" by default.
		annotation, pipeline, taskSpec, run, taskRunSpecs string
		want                                              map[string]bool
	}{
		{name: "none", want: map[string]bool{"ref": false, "inline": false, "last": false}},
		{name: "the PipelineRun's: every task, finally too", run: hermetic,
			want: map[string]bool{"ref": true, "inline": true, "last": true}},
		{name: "the Pipeline's, through the PipelineRun", pipeline: hermetic,
			want: map[string]bool{"ref": true, "inline": true, "last": true}},
		{name: "taskRunSpecs metadata: that task only", taskRunSpecs: `{pipelineTaskName: inline, metadata: {annotations: ` + hermetic + `}}`,
			want: map[string]bool{"ref": false, "inline": true, "last": false}},
		{name: "taskRunSpecs metadata wins over the PipelineRun's", run: hermetic,
			taskRunSpecs: `{pipelineTaskName: ref, metadata: {annotations: {experimental.tekton.dev/execution-mode: normal}}}`,
			want:         map[string]bool{"ref": false, "inline": true, "last": true}},
		{name: "an embedded taskSpec's metadata", taskSpec: hermetic,
			want: map[string]bool{"ref": false, "inline": true, "last": false}},
		{name: "the PipelineRun's wins over the taskSpec's", run: `{experimental.tekton.dev/execution-mode: normal}`, taskSpec: hermetic,
			want: map[string]bool{"ref": false, "inline": false, "last": false}},
		{name: "the referenced Task's", annotation: hermetic,
			want: map[string]bool{"ref": true, "inline": false, "last": false}},
		{name: "another value is not hermetic", run: `{experimental.tekton.dev/execution-mode: Hermetic}`,
			want: map[string]bool{"ref": false, "inline": false, "last": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			or := func(s string) string {
				if s == "" {
					return "{}"
				}
				return s
			}
			in := strings.NewReplacer("{ANNOTATION}", or(tc.annotation), "{PIPELINE}", or(tc.pipeline), "{TASKSPEC}", or(tc.taskSpec),
				"{RUN}", or(tc.run), "{TASKRUNSPECS}", tc.taskRunSpecs).Replace(task + "---" + pipeline + "---" + pipelineRun)
			c := mustCompile(t, in, Options{})
			for name, want := range tc.want {
				pt := planTask(t, c.Plan, name)
				if pt.GetHermetic() != want {
					t.Errorf("%s: hermetic = %v, want %v (annotations %v)", name, pt.GetHermetic(), want, pt.GetAnnotations())
				}
				checkHermeticEnv(t, name, pt)
			}
		})
	}
}

// checkHermeticEnv: as Tekton's pod builder does, a hermetic task's steps
// get TEKTON_HERMETIC=1 last (overriding their own), its sidecars do not;
// other tasks' steps keep what they had.
func checkHermeticEnv(t *testing.T, name string, pt *planpb.Task) {
	t.Helper()
	for _, s := range pt.GetSpec().GetSteps() {
		env := s.GetEnv()
		last := len(env) > 0 && env[len(env)-1].GetName() == "TEKTON_HERMETIC" && env[len(env)-1].GetValue() == "1"
		if last != pt.GetHermetic() {
			t.Errorf("%s step %s: env %v; TEKTON_HERMETIC=1 last: %v, want %v", name, s.GetName(), env, last, pt.GetHermetic())
		}
	}
	for _, s := range pt.GetSpec().GetSidecars() {
		for _, e := range s.GetEnv() {
			if e.GetName() == "TEKTON_HERMETIC" {
				t.Errorf("%s sidecar %s has %v", name, s.GetName(), e)
			}
		}
	}
}

func TestHermeticTaskRun(t *testing.T) {
	for _, tc := range []struct {
		annotations string
		want        bool
	}{
		{`{experimental.tekton.dev/execution-mode: hermetic}`, true},
		{`{other: hermetic}`, false},
	} {
		in := `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: tr
  annotations: ` + tc.annotations + `
spec:
  taskSpec:
    steps: [{name: s, image: busybox, script: "true"}]
`
		c := mustCompile(t, in, Options{})
		pt := c.Plan.GetTasks()[0]
		if pt.GetHermetic() != tc.want {
			t.Errorf("annotations %s: hermetic = %v, want %v", tc.annotations, pt.GetHermetic(), tc.want)
		}
		checkHermeticEnv(t, "tr", pt)
	}
}
