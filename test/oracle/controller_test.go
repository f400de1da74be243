package oracle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/tektonlocal"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// matrixRun exercises every part of matrix: combinations and include
// names, an empty array, a matrix fed by results, retries and onError per
// TaskRun, a when-skip, aggregated results, context variables and a matrix
// in finally. IMG is the step image.
const matrixRun = `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: mx}
spec:
  taskRunTemplate: {serviceAccountName: default}
  pipelineSpec:
    results: [{name: all, value: "$(tasks.m.results.out[*])"}]
    tasks:
    - name: m
      displayName: "m $(params.x)"
      matrix:
        params: [{name: x, value: [a, b, c]}]
        include:
        - name: "extra $(params.x)"
          params: [{name: x, value: b}, {name: z, value: zz}]
      taskSpec:
        params: [{name: x}, {name: z, default: ""}]
        results: [{name: out}]
        steps: [{name: s, image: IMG, script: 'printf "%s%s" "$(params.x)" "$(params.z)" > $(results.out.path)'}]
    - name: none
      matrix:
        params: [{name: x, value: []}]
      taskSpec:
        params: [{name: x}]
        steps: [{name: s, image: IMG, script: "exit 1"}]
    - name: gen
      taskSpec:
        results: [{name: list, type: array}]
        steps: [{name: s, image: IMG, script: 'printf "[\"p\",\"q\"]" > $(results.list.path)'}]
    - name: dyn
      matrix:
        params: [{name: yy, value: "$(tasks.gen.results.list[*])"}]
      taskSpec:
        params: [{name: yy}]
        results: [{name: out}]
        steps: [{name: s, image: IMG, script: 'printf "%s" "$(params.yy)" > $(results.out.path)'}]
    - name: retried
      retries: 1
      matrix:
        params: [{name: v, value: ["ok", "bad"]}]
      taskSpec:
        params: [{name: v}]
        steps: [{name: s, image: IMG, script: 'test "$(context.task.retry-count)" != 0 || test "$(params.v)" != bad'}]
    - name: flaky
      onError: continue
      matrix:
        params: [{name: v, value: ["ok", "bad", "ok2"]}]
      taskSpec:
        params: [{name: v}]
        steps: [{name: s, image: IMG, script: 'test "$(params.v)" != bad'}]
    - name: guarded
      when: [{input: "$(tasks.gen.results.list[0])", operator: in, values: ["nope"]}]
      matrix:
        params: [{name: v, value: [a, b]}]
      taskSpec:
        params: [{name: v}]
        steps: [{name: s, image: IMG, script: 'true'}]
    - name: use
      params:
      - {name: all, value: "$(tasks.m.results.out[*])"}
      - {name: dyn, value: "$(tasks.dyn.results.out[*])"}
      - {name: count, value: "$(tasks.m.matrix.length)/$(tasks.m.matrix.out.length)"}
      runAfter: [dyn]
      taskSpec:
        params: [{name: all, type: array}, {name: dyn, type: array}, {name: count}]
        steps: [{name: s, image: IMG, args: ["$(params.all[*])"], script: 'echo "$@" $(params.count)'}]
    finally:
    - name: report
      params:
      - {name: s, value: "$(tasks.flaky.status)/$(tasks.flaky.reason)/$(tasks.guarded.status)/$(tasks.status)"}
      matrix:
        params: [{name: w, value: ["$(tasks.dyn.matrix.out.length)", "z"]}]
      taskSpec:
        params: [{name: s}, {name: w}]
        steps: [{name: s, image: IMG, script: 'echo $(params.s) $(params.w)'}]
`

// TestMatrixAgainstTektonController runs matrixRun with Tekton's own
// controller (test/tektonlocal, one pod per TaskRun) and with `pod-runner
// run`, and compares what their statuses say: the run's condition,
// childReferences with display names, skipped tasks, results, and each
// TaskRun's name, labels, reason, retries, params and results. Needs the
// local cluster (POD_RUNNER_CLUSTER and KUBECONFIG).
func TestMatrixAgainstTektonController(t *testing.T) {
	if os.Getenv("POD_RUNNER_CLUSTER") == "" || os.Getenv("KUBECONFIG") == "" {
		testenv.Require(t, "a cluster", errors.New("POD_RUNNER_CLUSTER and KUBECONFIG are not set (make e2e sets them)"))
	}
	yaml := strings.ReplaceAll(matrixRun, "IMG", tektonlocal.ShellImage)
	ns := kube.Namespace(t, "pr-matrix")
	tektonlocal.Start(t, tektonlocal.Options{Namespace: ns})
	kube.Kubectl(t, yaml, "-n", ns, "create", "-f", "-")
	var run v1.PipelineRun
	for deadline := time.Now().Add(6 * time.Minute); ; time.Sleep(time.Second) {
		if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pipelinerun", "mx", "-o", "json")), &run); err != nil {
			t.Fatal(err)
		}
		if run.IsDone() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Tekton's run is not done after 6m: %+v", run.Status)
		}
	}
	var trs v1.TaskRunList
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-o", "json")), &trs); err != nil {
		t.Fatal(err)
	}
	want := statusSummary(&run, trs.Items)

	bin, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/pod-runner")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-f", "-", "-o", "json")
	cmd.Stdin = strings.NewReader(yaml)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pod-runner run: %v\n%s", err, stderr.String())
	}
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(out, &list); err != nil || len(list.Items) == 0 {
		t.Fatalf("pod-runner run -o json: %v", err)
	}
	var pr v1.PipelineRun
	if err := json.Unmarshal(list.Items[0], &pr); err != nil {
		t.Fatal(err)
	}
	var ours []v1.TaskRun
	for _, it := range list.Items[1:] {
		var tr v1.TaskRun
		if err := json.Unmarshal(it, &tr); err != nil {
			t.Fatal(err)
		}
		ours = append(ours, tr)
	}
	if got := statusSummary(&pr, ours); got != want {
		t.Errorf("statuses differ\nTekton's controller:\n%s\npod-runner run:\n%s", want, got)
	}
}

// statusSummary is what a consumer of a PipelineRun's status reads, TaskRuns
// by name.
func statusSummary(pr *v1.PipelineRun, trs []v1.TaskRun) string {
	c := pr.Status.GetCondition("Succeeded")
	out := []string{"run " + string(c.Status) + " " + c.Reason + " " + c.Message}
	for _, r := range pr.Status.ChildReferences {
		out = append(out, fmt.Sprintf("child %s %s %q", r.Name, r.PipelineTaskName, r.DisplayName))
	}
	for _, s := range pr.Status.SkippedTasks {
		out = append(out, fmt.Sprintf("skipped %s %s", s.Name, s.Reason))
	}
	for _, r := range pr.Status.Results {
		b, _ := json.Marshal(r.Value)
		out = append(out, fmt.Sprintf("result %s %s", r.Name, b))
	}
	var lines []string
	for _, tr := range trs {
		tc := tr.Status.GetCondition("Succeeded")
		ps, _ := json.Marshal(tr.Spec.Params)
		rs, _ := json.Marshal(tr.Status.Results)
		lines = append(lines, fmt.Sprintf("taskrun %s pipelineTask=%s memberOf=%s %s retries=%d params=%s results=%s", tr.Name,
			tr.Labels["tekton.dev/pipelineTask"], tr.Labels["tekton.dev/memberOf"], tc.Reason, len(tr.Status.RetriesStatus), ps, rs))
	}
	sort.Strings(lines)
	return strings.Join(append(out, lines...), "\n")
}
