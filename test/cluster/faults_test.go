package cluster

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// chainRuns is n delegated PipelineRuns named prefix-0 … of a chain of
// tasks: each sleeps a moment and passes its result, grown by one letter,
// to the next; the run's result is the last one's (want).
func chainRuns(prefix string, n, tasks int, sleep string) (yaml, want string) {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: %s-%d}
spec:
  managedBy: pod-runner.dev/controller
  taskRunTemplate: {serviceAccountName: default}
  pipelineSpec:
    results: [{name: word, value: $(tasks.t%d.results.word)}]
    tasks:
`, prefix, i, tasks-1)
		for j := range tasks {
			in := ""
			if j > 0 {
				in = fmt.Sprintf("$(tasks.t%d.results.word)", j-1)
			}
			fmt.Fprintf(&b, `    - name: t%d
      params: [{name: in, value: "%s"}]
      taskSpec:
        params: [{name: in}]
        results: [{name: word}]
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "sleep %s; printf '%%sx' '$(params.in)' > $(results.word.path)"}]
`, j, in, sleep)
		}
		b.WriteString("---\n")
	}
	return b.String(), strings.Repeat("x", tasks)
}

// checkChains: every run of chainRuns succeeded with its result, each
// with one Pod and one final TaskRun per task, each TaskRun's result there.
func checkChains(t *testing.T, ns, prefix string, n, tasks int, want string) {
	t.Helper()
	pods := &corev1.PodList{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pods", "-o", "json")), pods); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != n {
		t.Errorf("%d pods for %d runs", len(pods.Items), n)
	}
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		pr := getPipelineRun(t, ns, name)
		r := &finished{pr: pr, trs: taskRuns(t, ns, name)}
		if r.reason() != "Succeeded" || len(pr.Status.Results) != 1 || pr.Status.Results[0].Value.StringVal != want {
			msg := ""
			if c := pr.Status.GetCondition("Succeeded"); c != nil {
				msg = c.Message
			}
			t.Errorf("%s: %s (%s), results %+v; want Succeeded with %q", name, r.reason(), msg, pr.Status.Results, want)
			continue
		}
		if len(r.trs) != tasks || len(pr.Status.ChildReferences) != tasks {
			t.Errorf("%s: %d TaskRuns, %d childReferences; want %d", name, len(r.trs), len(pr.Status.ChildReferences), tasks)
		}
		for j := range tasks {
			task := fmt.Sprintf("t%d", j)
			if got, want := r.result(task, "word"), strings.Repeat("x", j+1); r.taskReason(task) != "Succeeded" || got != want {
				t.Errorf("%s/%s: %s with %q; want Succeeded with %q", name, task, r.taskReason(task), got, want)
			}
		}
	}
}

// TestControllerKilledUnderLoad: 20 runs of 5 tasks at once, the
// controller SIGKILLed five times while they go and started again each
// time: every run finishes, nothing lost, no second Pod.
func TestControllerKilledUnderLoad(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-kill")
	bin, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/injector")
	if err != nil {
		t.Fatal(err)
	}
	const runs, tasks = 20, 5
	yaml, want := chainRuns("k", runs, tasks, "3")
	c := kube.StartControllerProcess(t, bin, ns)
	start := time.Now()
	kube.Kubectl(t, yaml, "-n", ns, "create", "-f", "-")

	done := func() int {
		list := &v1.PipelineRunList{}
		if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pipelineruns", "-o", "json")), list); err != nil {
			t.Fatal(err)
		}
		n := 0
		for i := range list.Items {
			if list.Items[i].IsDone() {
				n++
			}
		}
		return n
	}
	// Every 3 s from 2 s on: each kill lands while runs are going (each
	// takes at least 15 s), before, during and after their Pods start.
	for kill := range 5 {
		time.Sleep(2 * time.Second)
		n := done()
		t.Logf("kill %d at %.0fs: %d of %d runs done", kill+1, time.Since(start).Seconds(), n, runs)
		if n == runs {
			t.Fatalf("every run ended before kill %d: it would test nothing", kill+1)
		}
		c.Kill()
		time.Sleep(time.Second)
		c = kube.StartControllerProcess(t, bin, ns)
	}
	kube.WaitFor(t, 5*time.Minute, "every run to end", func() bool { return done() == runs })
	t.Logf("%d runs of %d tasks done %.0fs after creation, the controller killed 5 times", runs, tasks, time.Since(start).Seconds())
	checkChains(t, ns, "k", runs, tasks, want)
}
