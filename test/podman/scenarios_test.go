package podman

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/podlayout"
)

// scenario is a PipelineRun run in one Pod under podman and, unless
// podOnly, also with `pod-runner run`: both must give the same Tekton
// status.
type scenario struct {
	name string
	// yaml is the PipelineRun (and its definitions); NAME is replaced by a
	// run name unique to this test run, as podman's volumes and pods are
	// named after it.
	yaml    string
	timeout time.Duration
	// during runs while the Pod runs.
	during func(t *testing.T, p *pod)
	// podOnly: what happens cannot happen to host processes (a container
	// killed from outside).
	podOnly bool
	check   func(t *testing.T, r *podRun)
}

var scenarios = []scenario{{
	name: "parallel tasks share an emptyDir workspace",
	yaml: `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: NAME}
spec:
  workspaces: [{name: shared, emptyDir: {}}]
  pipelineSpec:
    workspaces: [{name: shared}]
    results: [{name: both, value: "$(tasks.read.results.both)"}]
    tasks:
    - name: write-a
      workspaces: [{name: ws, workspace: shared}]
      taskSpec:
        workspaces: [{name: ws}]
        steps:
        - {name: write, image: localhost/busybox:pod-runner, script: "echo -n a > $(workspaces.ws.path)/a"}
    - name: write-b
      workspaces: [{name: ws, workspace: shared}]
      taskSpec:
        workspaces: [{name: ws}]
        steps:
        - {name: write, image: localhost/busybox:pod-runner, script: "echo -n b > $(workspaces.ws.path)/b"}
    - name: read
      runAfter: [write-a, write-b]
      workspaces: [{name: ws, workspace: shared}]
      taskSpec:
        workspaces: [{name: ws}]
        results: [{name: both}]
        steps:
        - name: read
          image: localhost/busybox:pod-runner
          script: |
            cat $(workspaces.ws.path)/a $(workspaces.ws.path)/b | tee $(results.both.path)
`,
	check: func(t *testing.T, r *podRun) {
		expect(t, "run", r.reason(), "True/Succeeded")
		expect(t, "result both", r.result("both"), `"ab"`)
	},
}, {
	// Results into params, straight into an embedded step
	// (PropagateResults), and between steps through $(steps.S.results.R)
	// in env and args.
	name: "results between tasks",
	yaml: `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: NAME}
spec:
  pipelineSpec:
    results:
    - {name: out, value: "$(tasks.use.results.out)"}
    - {name: direct, value: "$(tasks.direct.results.out)"}
    tasks:
    - name: produce
      taskSpec:
        results: [{name: word}, {name: list, type: array}]
        steps:
        - name: produce
          image: localhost/busybox:pod-runner
          script: |
            echo -n hello > $(results.word.path)
            echo -n '["x","y"]' > $(results.list.path)
    - name: use
      params:
      - {name: w, value: "$(tasks.produce.results.word)"}
      - {name: second, value: "$(tasks.produce.results.list[1])"}
      taskSpec:
        params: [{name: w}, {name: second}]
        results: [{name: out}]
        steps:
        - {name: use, image: localhost/busybox:pod-runner, script: "echo -n $(params.w)-$(params.second) | tee $(results.out.path)"}
    - name: direct
      taskSpec:
        results: [{name: out}]
        steps:
        - name: produce
          image: localhost/busybox:pod-runner
          results: [{name: list, type: array}]
          script: echo -n '["p","q"]' > $(step.results.list.path)
        - name: use
          image: localhost/busybox:pod-runner
          env: [{name: W, value: "$(tasks.produce.results.word)"}]
          command: [sh, -c]
          args: ['printf "%s|" "$W" "$@" > $(results.out.path)', sh, "$(steps.produce.results.list[*])"]
`,
	check: func(t *testing.T, r *podRun) {
		expect(t, "run", r.reason(), "True/Succeeded")
		expect(t, "result out", r.result("out"), `"hello-y"`)
		expect(t, "result direct", r.result("direct"), `"hello|p|q|"`)
	},
}, {
	name: "a when-skipped task",
	yaml: `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: NAME}
spec:
  params: [{name: mode, value: fast}]
  pipelineSpec:
    params: [{name: mode}]
    tasks:
    - name: guarded
      when: [{input: "$(params.mode)", operator: in, values: [slow]}]
      taskSpec:
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "echo must not run; exit 1"}]
    - name: always
      taskSpec:
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "echo ran"}]
`,
	check: func(t *testing.T, r *podRun) {
		expect(t, "run", r.reason(), "True/Completed")
		if len(r.pr.Status.SkippedTasks) != 1 || r.pr.Status.SkippedTasks[0].Name != "guarded" {
			t.Errorf("skipped tasks: %+v, want guarded", r.pr.Status.SkippedTasks)
		} else {
			expect(t, "skip reason", string(r.pr.Status.SkippedTasks[0].Reason), "When Expressions evaluated to false")
		}
		expect(t, "always", r.taskReason("always"), "True/Succeeded")
		expect(t, "guarded", r.taskReason("guarded"), "")
	},
}, {
	name: "finally sees a failure",
	yaml: `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: NAME}
spec:
  pipelineSpec:
    results: [{name: seen, value: "$(finally.report.results.seen)"}]
    tasks:
    - name: fails
      taskSpec:
        steps: [{name: boom, image: localhost/busybox:pod-runner, script: "echo going down; exit 3"}]
    finally:
    - name: report
      params:
      - {name: fails, value: "$(tasks.fails.status)"}
      - {name: all, value: "$(tasks.status)"}
      taskSpec:
        params: [{name: fails}, {name: all}]
        results: [{name: seen}]
        steps:
        - {name: report, image: localhost/busybox:pod-runner, script: "echo -n $(params.fails)/$(params.all) | tee $(results.seen.path)"}
`,
	check: func(t *testing.T, r *podRun) {
		expect(t, "run", r.reason(), "False/Failed")
		// Tekton's reason for a task whose step exited non-zero.
		expect(t, "fails", r.taskReason("fails"), "False/StepFailed")
		expect(t, "report", r.taskReason("report"), "True/Succeeded")
		expect(t, "result seen", r.result("seen"), `"Failed/Failed"`)
		if log := r.pod.logs(t, podlayout.StepContainer("fails", "boom")); !strings.Contains(log, "going down") {
			t.Errorf("the step container's log lacks the step's output:\n%s", log)
		}
	},
}, {
	name: "a retried task",
	yaml: `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: NAME}
spec:
  workspaces: [{name: state, emptyDir: {}}]
  pipelineSpec:
    workspaces: [{name: state}]
    results: [{name: tries, value: "$(tasks.flaky.results.tries)"}]
    tasks:
    - name: flaky
      retries: 2
      workspaces: [{name: state}]
      taskSpec:
        workspaces: [{name: state}]
        results: [{name: tries}]
        steps:
        - name: try
          image: localhost/busybox:pod-runner
          script: |
            echo x >> $(workspaces.state.path)/tries
            n=$(wc -l < $(workspaces.state.path)/tries)
            echo -n $n > $(results.tries.path)
            test $n -ge 2
`,
	check: func(t *testing.T, r *podRun) {
		expect(t, "run", r.reason(), "True/Succeeded")
		expect(t, "result tries", r.result("tries"), `"2"`)
		if tr := r.taskRuns["flaky"]; tr == nil || len(tr.Status.RetriesStatus) != 1 {
			t.Errorf("flaky's retriesStatus: want 1 entry, got %+v", tr)
		}
	},
}, {
	name: "a timeout",
	yaml: `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: NAME}
spec:
  pipelineSpec:
    tasks:
    - name: slow
      timeout: 1s
      taskSpec:
        steps: [{name: sleep, image: localhost/busybox:pod-runner, script: "sleep 60"}]
`,
	check: func(t *testing.T, r *podRun) {
		expect(t, "run", r.reason(), "False/Failed")
		expect(t, "slow", r.taskReason("slow"), "False/TaskRunTimeout")
		if r.pod.ended > 30*time.Second {
			t.Errorf("a 1s timeout took %s to end the pod", r.pod.ended)
		}
	},
}, {
	name:    "a step container killed from outside mid-run",
	podOnly: true,
	yaml: `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: NAME}
spec:
  pipelineSpec:
    tasks:
    - name: victim
      taskSpec:
        steps: [{name: sleep, image: localhost/busybox:pod-runner, script: "echo started; sleep 60"}]
    - name: after
      runAfter: [victim]
      taskSpec:
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "echo must not run"}]
`,
	during: func(t *testing.T, p *pod) {
		c := podlayout.StepContainer("victim", "sleep")
		p.waitForLog(t, c, "started", time.Minute)
		if _, err := podman(t.Context(), "kill", p.container(c)); err != nil {
			t.Fatal(err)
		}
	},
	check: func(t *testing.T, r *podRun) {
		expect(t, "run", r.reason(), "False/Failed")
		// Tekton's for a step container that ended non-zero.
		expect(t, "victim", r.taskReason("victim"), "False/StepFailed")
		if r.pod.ended > 30*time.Second {
			t.Errorf("a killed step took %s to end the pod", r.pod.ended)
		}
		if r.taskReason("after") != "" {
			t.Errorf("after ran after its dependency was killed: %s", r.taskReason("after"))
		}
		// Tekton's StoppingSkip: a failed task stops the DAG.
		if sk := r.pr.Status.SkippedTasks; len(sk) != 1 || sk[0].Name != "after" || sk[0].Reason != "PipelineRun was stopping" {
			t.Errorf("skipped tasks: %+v, want after (PipelineRun was stopping)", sk)
		}
	},
}, {
	// The injector gives each task its own results and steps volumes, no
	// subPath of a shared one (which podman 4.3 would ignore): a later task
	// sees none of an earlier task's files at Tekton's paths.
	name: "each task sees only its own results",
	yaml: `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: NAME}
spec:
  pipelineSpec:
    results: [{name: second, value: "$(tasks.second.results.r)"}]
    tasks:
    - name: first
      taskSpec:
        results: [{name: r}]
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "echo -n one > $(results.r.path)"}]
    - name: second
      runAfter: [first]
      taskSpec:
        results: [{name: r}]
        steps:
        - name: s
          image: localhost/busybox:pod-runner
          script: |
            results=$(dirname $(results.r.path)) steps=$(dirname $(dirname $(steps.step-s.exitCode.path)))
            ls -A $results $steps
            [ -z "$(ls -A $results)" ] || { echo another task's results are visible; exit 1; }
            [ "$(ls -A $steps)" = step-s ] || { echo another task's steps are visible; exit 1; }
            echo -n two > $(results.r.path)
`,
	check: func(t *testing.T, r *podRun) {
		expect(t, "run", r.reason(), "True/Succeeded")
		expect(t, "result second", r.result("second"), `"two"`)
	},
}, {
	name: "ten tasks, one pod",
	yaml: tenTasks,
	check: func(t *testing.T, r *podRun) {
		expect(t, "run", r.reason(), "True/Succeeded")
		expect(t, "taskruns", fmt.Sprint(len(r.taskRuns)), "10")
	},
}}

// tenTasks is a fan-out of eight tasks between a first and a last one.
var tenTasks = func() string {
	var b strings.Builder
	b.WriteString(`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: NAME}
spec:
  pipelineSpec:
    tasks:
    - name: first
      taskSpec:
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "echo first"}]
`)
	var mids []string
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, `    - name: mid-%d
      runAfter: [first]
      taskSpec:
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "echo %d"}]
`, i, i)
		mids = append(mids, fmt.Sprintf("mid-%d", i))
	}
	fmt.Fprintf(&b, `    - name: last
      runAfter: [%s]
      taskSpec:
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "echo last"}]
`, strings.Join(mids, ", "))
	return b.String()
}()

func expect(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %s, want %s", what, got, want)
	}
}

// TestPipelineInPod runs each scenario in one Pod under podman and checks
// its Tekton status, then runs it with `pod-runner run` and requires the
// same status.
func TestPipelineInPod(t *testing.T) {
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			needPipeline(t)
			name := fmt.Sprintf("e2e-%d-%x", i, time.Now().UnixNano()&0xffffffff)
			yaml := strings.ReplaceAll(sc.yaml, "NAME", name)
			timeout := sc.timeout
			if timeout == 0 {
				timeout = 2 * time.Minute
			}
			var during func(*pod)
			if sc.during != nil {
				during = func(p *pod) { sc.during(t, p) }
			}
			r := runInPod(t, name, yaml, timeout, during)
			sc.check(t, r)
			if sc.podOnly {
				return
			}
			local := runLocally(t, yaml)
			if got, want := r.summary(), local.summary(); got != want {
				t.Errorf("the pod and pod-runner run disagree\npod:\n%s\npod-runner run:\n%s", got, want)
			}
		})
	}
}
