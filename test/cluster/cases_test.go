package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/test/kube"
)

// clusterCase is one delegated PipelineRun: its YAML (name "run"), what to
// do to it while it runs, and what its final status must say.
type clusterCase struct {
	name   string
	yaml   string
	during func(t *testing.T, ns string)
	check  func(t *testing.T, r *finished)
}

// finished is a run that ended, with everything the controller wrote.
type finished struct {
	pr   *v1.PipelineRun
	trs  map[string]*v1.TaskRun // by pipeline task
	pods []corev1.Pod
}

func (f *finished) reason() string { return conditionOf(f.pr.Status.GetCondition("Succeeded")) }

func (f *finished) taskReason(task string) string {
	tr := f.trs[task]
	if tr == nil {
		return ""
	}
	return conditionOf(tr.Status.GetCondition("Succeeded"))
}

func conditionOf(c interface{ GetReason() string }) string {
	if c == nil {
		return ""
	}
	return c.GetReason()
}

func (f *finished) result(task, name string) string {
	if tr := f.trs[task]; tr != nil {
		for _, r := range tr.Status.Results {
			if r.Name == name {
				return r.Value.StringVal
			}
		}
	}
	return ""
}

func expect(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

const runHead = `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: run}
spec:
  managedBy: pod-runner.dev/controller
  taskRunTemplate: {serviceAccountName: default}
`

var clusterCases = []clusterCase{{
	name: "parallel tasks share an emptyDir workspace and pass results",
	yaml: runHead + `  workspaces: [{name: shared, emptyDir: {}}]
  pipelineSpec:
    workspaces: [{name: shared}]
    results: [{name: both, value: $(tasks.join.results.both)}]
    tasks:
    - name: left
      workspaces: [{name: ws, workspace: shared}]
      taskSpec:
        workspaces: [{name: ws}]
        results: [{name: word}]
        steps: [{name: write, image: localhost/busybox:pod-runner, script: "echo L > $(workspaces.ws.path)/left; printf left > $(results.word.path)"}]
    - name: right
      workspaces: [{name: ws, workspace: shared}]
      taskSpec:
        workspaces: [{name: ws}]
        results: [{name: word}]
        steps: [{name: write, image: localhost/busybox:pod-runner, script: "echo R > $(workspaces.ws.path)/right; printf right > $(results.word.path)"}]
    - name: join
      workspaces: [{name: ws, workspace: shared}]
      params: [{name: words, value: "$(tasks.left.results.word)+$(tasks.right.results.word)"}]
      taskSpec:
        workspaces: [{name: ws}]
        params: [{name: words}]
        results: [{name: both}]
        steps: [{name: read, image: localhost/busybox:pod-runner, script: "printf '%s:%s%s' '$(params.words)' $(cat $(workspaces.ws.path)/left) $(cat $(workspaces.ws.path)/right) > $(results.both.path)"}]
`,
	check: func(t *testing.T, r *finished) {
		expect(t, "run", r.reason(), "Succeeded")
		expect(t, "join's result", r.result("join", "both"), "left+right:LR")
		if len(r.pr.Status.Results) != 1 || r.pr.Status.Results[0].Value.StringVal != "left+right:LR" {
			t.Errorf("pipeline results %+v", r.pr.Status.Results)
		}
	},
}, {
	name: "a when expression skips a task and what needs its result",
	yaml: runHead + `  params: [{name: go, value: "no"}]
  pipelineSpec:
    params: [{name: go}]
    tasks:
    - name: gated
      when: [{input: $(params.go), operator: in, values: ["yes"]}]
      taskSpec:
        results: [{name: out}]
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "printf x > $(results.out.path)"}]
    - name: consumer
      params: [{name: v, value: $(tasks.gated.results.out)}]
      taskSpec:
        params: [{name: v}]
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "echo $(params.v)"}]
    - name: other
      taskSpec:
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "echo runs"}]
`,
	check: func(t *testing.T, r *finished) {
		expect(t, "run", r.reason(), "Completed")
		skipped := map[string]string{}
		for _, s := range r.pr.Status.SkippedTasks {
			skipped[s.Name] = string(s.Reason)
		}
		expect(t, "gated skipped", skipped["gated"], "When Expressions evaluated to false")
		expect(t, "consumer skipped", skipped["consumer"], "Results were missing")
		expect(t, "other", r.taskReason("other"), "Succeeded")
		if r.trs["gated"] != nil || r.trs["consumer"] != nil {
			t.Error("a skipped task has a TaskRun")
		}
	},
}, {
	name: "a failing task, then finally reads $(tasks.status)",
	yaml: runHead + `  pipelineSpec:
    tasks:
    - name: breaks
      taskSpec:
        steps: [{name: fail, image: localhost/busybox:pod-runner, script: "echo broken; exit 3"}]
    finally:
    - name: report
      params: [{name: outcome, value: $(tasks.status)}, {name: broke, value: $(tasks.breaks.status)}]
      taskSpec:
        params: [{name: outcome}, {name: broke}]
        results: [{name: seen}]
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "printf '$(params.outcome)/$(params.broke)' > $(results.seen.path)"}]
`,
	check: func(t *testing.T, r *finished) {
		expect(t, "run", r.reason(), "Failed")
		// Tekton's reason for a task whose step exited non-zero.
		expect(t, "breaks", r.taskReason("breaks"), "StepFailed")
		expect(t, "report", r.taskReason("report"), "Succeeded")
		expect(t, "what finally saw", r.result("report", "seen"), "Failed/Failed")
		if tr := r.trs["breaks"]; tr != nil {
			if len(tr.Status.Steps) != 1 || tr.Status.Steps[0].Terminated == nil || tr.Status.Steps[0].Terminated.ExitCode != 3 {
				t.Errorf("breaks steps: %+v, want one terminated with exit code 3", tr.Status.Steps)
			}
		}
	},
}, {
	name: "a task that fails once succeeds on its retry",
	yaml: runHead + `  workspaces: [{name: state, emptyDir: {}}]
  pipelineSpec:
    workspaces: [{name: state}]
    tasks:
    - name: flaky
      retries: 2
      workspaces: [{name: state, workspace: state}]
      taskSpec:
        workspaces: [{name: state}]
        steps:
        - name: try
          image: localhost/busybox:pod-runner
          script: |
            f=$(workspaces.state.path)/tried
            if [ -e $f ]; then echo second; exit 0; fi
            touch $f; echo first; exit 1
`,
	check: func(t *testing.T, r *finished) {
		expect(t, "run", r.reason(), "Succeeded")
		expect(t, "flaky", r.taskReason("flaky"), "Succeeded")
		if tr := r.trs["flaky"]; tr != nil {
			if n := len(tr.Status.RetriesStatus); n != 1 {
				t.Errorf("retriesStatus has %d entries, want 1", n)
			} else if got := conditionOf(tr.Status.RetriesStatus[0].GetCondition("Succeeded")); got != "StepFailed" {
				t.Errorf("first attempt: %q, want StepFailed", got)
			}
		}
	},
}, {
	name: "a task over its timeout",
	yaml: runHead + `  pipelineSpec:
    tasks:
    - name: slow
      timeout: 2s
      taskSpec:
        steps: [{name: sleep, image: localhost/busybox:pod-runner, script: "sleep 120"}]
`,
	check: func(t *testing.T, r *finished) {
		expect(t, "run", r.reason(), "Failed")
		expect(t, "slow", r.taskReason("slow"), "TaskRunTimeout")
	},
}, {
	name: "a step container killed from outside",
	yaml: runHead + `  pipelineSpec:
    tasks:
    - name: victim
      taskSpec:
        steps: [{name: sleep, image: localhost/busybox:pod-runner, script: "echo started; sleep 120"}]
    - name: after
      runAfter: [victim]
      taskSpec:
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "echo must not run"}]
`,
	during: func(t *testing.T, ns string) {
		killContainer(t, ns, "run", podlayout.StepContainer("victim", "sleep"), "started")
	},
	check: func(t *testing.T, r *finished) {
		expect(t, "run", r.reason(), "Failed")
		// Tekton's for a step container that ended non-zero.
		expect(t, "victim", r.taskReason("victim"), "StepFailed")
		if r.trs["after"] != nil {
			t.Error("after ran after its dependency was killed")
		}
		if sk := r.pr.Status.SkippedTasks; len(sk) != 1 || sk[0].Name != "after" {
			t.Errorf("skipped tasks: %+v, want after", sk)
		}
	},
}, {
	name: "the supervisor container killed from outside",
	yaml: runHead + `  pipelineSpec:
    tasks:
    - name: going
      taskSpec:
        steps: [{name: sleep, image: localhost/busybox:pod-runner, script: "echo started; sleep 120"}]
    - name: after
      runAfter: [going]
      taskSpec:
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "echo must not run"}]
`,
	during: func(t *testing.T, ns string) {
		killContainerWhen(t, ns, "run", podlayout.StepContainer("going", "sleep"), "started", podlayout.SupervisorContainer)
		// The steps wait for a supervisor that is gone: the controller
		// must end the run itself, and soon, not leave it Running.
		kube.WaitFor(t, 30*time.Second, "the run to end after its supervisor was killed", func() bool {
			return getPipelineRun(t, ns, "run").IsDone()
		})
	},
	check: func(t *testing.T, r *finished) {
		expect(t, "run", r.reason(), "Failed")
		if c := r.pr.Status.GetCondition("Succeeded"); c == nil || !strings.Contains(c.Message, "exit code 137") {
			t.Errorf("run condition %+v: want the supervisor's exit code", c)
		}
		expect(t, "going", r.taskReason("going"), "TaskRunCancelled")
		if r.trs["after"] != nil {
			t.Error("after ran without a supervisor")
		}
		if len(r.pods) != 1 {
			t.Errorf("%d pods, want the one", len(r.pods))
		}
		kube.WaitFor(t, time.Minute, "the Pod to be stopped", func() bool {
			p := &corev1.Pod{}
			_ = json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", r.pr.Namespace, "get", "pod", "run", "-o", "json")), p)
			return p.Status.Phase == corev1.PodFailed
		})
	},
}, {
	name: "a step over its memory limit is OOM-killed",
	yaml: runHead + `  pipelineSpec:
    tasks:
    - name: hungry
      taskSpec:
        steps:
        - name: eat
          image: localhost/busybox:pod-runner
          computeResources: {limits: {memory: 48Mi}}
          script: "echo eating; dd if=/dev/zero of=/dev/null bs=200M count=1; echo survived"
    finally:
    - name: report
      params: [{name: hungry, value: $(tasks.hungry.status)}]
      taskSpec:
        params: [{name: hungry}]
        results: [{name: seen}]
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "printf '$(params.hungry)' > $(results.seen.path)"}]
`,
	check: func(t *testing.T, r *finished) {
		expect(t, "run", r.reason(), "Failed")
		// Tekton's reason for a step the kernel killed over its limit.
		expect(t, "hungry", r.taskReason("hungry"), "StepOOM")
		expect(t, "what finally saw", r.result("report", "seen"), "Failed")
		if tr := r.trs["hungry"]; tr != nil {
			if len(tr.Status.Steps) != 1 || tr.Status.Steps[0].Terminated == nil || tr.Status.Steps[0].Terminated.Reason != "OOMKilled" {
				t.Errorf("hungry steps: %+v, want one terminated OOMKilled", tr.Status.Steps)
			}
		}
	},
}, {
	name: "ten tasks, one Pod",
	yaml: tenTasks(),
	check: func(t *testing.T, r *finished) {
		expect(t, "run", r.reason(), "Succeeded")
		if len(r.pods) != 1 {
			t.Errorf("%d pods, want 1", len(r.pods))
		}
		if len(r.trs) != 10 || len(r.pr.Status.ChildReferences) != 10 {
			t.Errorf("%d TaskRuns, %d childReferences, want 10", len(r.trs), len(r.pr.Status.ChildReferences))
		}
		for task, tr := range r.trs {
			if tr.Status.PodName != r.pods[0].Name {
				t.Errorf("%s: podName %q, want %q", task, tr.Status.PodName, r.pods[0].Name)
			}
		}
	},
}}

func tenTasks() string {
	var b strings.Builder
	b.WriteString(runHead + "  pipelineSpec:\n    tasks:\n")
	for i := range 10 {
		fmt.Fprintf(&b, "    - name: t%d\n      taskSpec:\n        steps: [{name: s, image: localhost/busybox:pod-runner, script: \"echo %d\"}]\n", i, i)
	}
	return b.String()
}

// TestCases runs each case as its own delegated run, in its own namespace
// with its own controller, in parallel.
func TestCases(t *testing.T) {
	enabled(t)
	installCRDs(t)
	for _, c := range clusterCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := kube.Namespace(t, "pr-e2e")
			kube.StartController(t, ns)
			kube.Kubectl(t, c.yaml, "-n", ns, "create", "-f", "-")
			if c.during != nil {
				c.during(t, ns)
			}
			var pr *v1.PipelineRun
			kube.WaitFor(t, 3*time.Minute, "the run to end", func() bool {
				pr = getPipelineRun(t, ns, "run")
				return pr.IsDone()
			})
			r := &finished{pr: pr, trs: taskRuns(t, ns, "run")}
			pods := &corev1.PodList{}
			if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pods", "-o", "json")), pods); err != nil {
				t.Fatal(err)
			}
			r.pods = pods.Items
			checkCommon(t, r)
			c.check(t, r)
		})
	}
}

// checkCommon: what every delegated run's status must say.
func checkCommon(t *testing.T, r *finished) {
	t.Helper()
	if r.pr.Status.StartTime == nil || r.pr.Status.CompletionTime == nil || r.pr.Status.PipelineSpec == nil {
		t.Errorf("run status lacks startTime, completionTime or pipelineSpec")
	}
	if len(r.pr.Status.ChildReferences) != len(r.trs) {
		t.Errorf("%d childReferences for %d TaskRuns", len(r.pr.Status.ChildReferences), len(r.trs))
	}
	for task, tr := range r.trs {
		if tr.Labels["tekton.dev/pipelineRun"] != "run" || tr.Labels["tekton.dev/pipelineTask"] != task {
			t.Errorf("%s: labels %v", task, tr.Labels)
		}
		if tr.Status.PodName == "" || tr.Status.StartTime == nil || tr.Status.CompletionTime == nil {
			t.Errorf("%s: podName %q, startTime %v, completionTime %v", task, tr.Status.PodName, tr.Status.StartTime, tr.Status.CompletionTime)
		}
		for _, s := range tr.Status.Steps {
			if want := podlayout.StepContainer(task, s.Name); s.Container != want {
				t.Errorf("%s: step %s container %q, the Pod's is %q", task, s.Name, s.Container, want)
			}
		}
	}
}

func taskRuns(t *testing.T, ns, pr string) map[string]*v1.TaskRun {
	t.Helper()
	list := &v1.TaskRunList{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-l", "tekton.dev/pipelineRun="+pr, "-o", "json")), list); err != nil {
		t.Fatal(err)
	}
	out := map[string]*v1.TaskRun{}
	for i := range list.Items {
		out[list.Items[i].Labels["tekton.dev/pipelineTask"]] = &list.Items[i]
	}
	return out
}

// killContainer waits until the container's log shows marker, then kills
// its process from outside, through the node's containerd (as the OOM
// killer or a node problem would): SIGKILL, no chance to report.
func killContainer(t *testing.T, ns, pod, container, marker string) {
	t.Helper()
	killContainerWhen(t, ns, pod, container, marker, container)
}

// killContainerWhen is killContainer of victim once watch's log shows
// marker.
func killContainerWhen(t *testing.T, ns, pod, watch, marker, victim string) {
	t.Helper()
	sock := filepath.Join(kube.State(), "containerd", "containerd.sock")
	if _, err := os.Stat(sock); err != nil {
		testenv.Require(t, "the node's containerd (local-k8s), to kill a container", err)
	}
	kube.WaitFor(t, 2*time.Minute, watch+" to start", func() bool {
		out, err := exec.Command("kubectl", "-n", ns, "logs", pod, "-c", watch).Output()
		return err == nil && strings.Contains(string(out), marker)
	})
	p := &corev1.Pod{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pod", pod, "-o", "json")), p); err != nil {
		t.Fatal(err)
	}
	var id string
	for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		if cs.Name == victim {
			id = strings.TrimPrefix(cs.ContainerID, "containerd://")
		}
	}
	if id == "" {
		t.Fatalf("no container ID for %s", victim)
	}
	if out, err := exec.Command("ctr", "-a", sock, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", id).CombinedOutput(); err != nil {
		t.Fatalf("ctr tasks kill %s: %v: %s", id, err, out)
	}
}
