package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/tektonlocal"
	"github.com/e7763abc/pod-runner/test/testbin"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
)

const tknDefinitions = `
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: two-steps}
spec:
  params: [{name: word, type: string}]
  results: [{name: out}]
  steps:
  - name: one
    image: localhost/busybox:pod-runner
    script: |
      echo "one says $(params.word)"
      sleep 1
      echo "one again"
  - name: two
    image: localhost/busybox:pod-runner
    script: |
      echo "two says $(params.word)"
      printf done > $(results.out.path)
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: logs}
spec:
  tasks:
  - name: first
    taskRef: {name: two-steps}
    params: [{name: word, value: alpha}]
  - name: second
    runAfter: [first]
    taskRef: {name: two-steps}
    params: [{name: word, value: "$(tasks.first.results.out)"}]
  finally:
  - name: report
    params: [{name: status, value: "$(tasks.status)"}]
    taskSpec:
      params: [{name: status}]
      steps:
      - name: say
        image: localhost/busybox:pod-runner
        script: echo "report says $(params.status)"
`

const tknRun = `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: logs}
spec:
  pipelineRef: {name: logs}
  taskRunTemplate: {serviceAccountName: default}
  timeouts: {pipeline: 10m}
`

// tknCLI runs the Tekton CLI the Makefile built (TKN).
func tknCLI(t *testing.T) func(args ...string) string {
	t.Helper()
	bin := os.Getenv("TKN")
	if err := testenv.Env("TKN", "make e2e (make tkn builds it)"); err != nil {
		testenv.Require(t, "the Tekton CLI", err)
	}
	return func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("tkn %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
}

// TestTknWithTekton runs one PipelineRun through Tekton's controller and
// through ours and compares what the real tkn shows of each: list and
// describe the same, names and times aside; `pod-runner logs` (and -f,
// started while the run goes) prints for ours exactly what `tkn … logs`
// prints for Tekton's; plain `tkn … logs` on ours shows the shared Pod's
// step containers under each TaskRun (README), and never a status event.
func TestTknWithTekton(t *testing.T) {
	enabled(t)
	tkn := tknCLI(t)
	installCRDs(t)
	podRunner, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/pod-runner")
	if err != nil {
		t.Fatal(err)
	}
	nsT, nsO := kube.Namespace(t, "pr-e2e"), kube.Namespace(t, "pr-e2e")
	tektonlocal.Start(t, tektonlocal.Options{Namespace: nsT})
	injector, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/injector")
	if err != nil {
		t.Fatal(err)
	}
	kube.StartControllerProcess(t, injector, nsO)
	for _, ns := range []string{nsT, nsO} {
		kube.Kubectl(t, tknDefinitions, "-n", ns, "apply", "-f", "-")
	}

	// Following starts with the run, as a user types it after create.
	var wg sync.WaitGroup
	followed := map[string]string{}
	var mu sync.Mutex
	follow := func(key, bin string, args ...string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// stdout only: tkn's client-go logs a cancelled watch on
			// stderr when a followed Pod ends.
			cmd := exec.Command(bin, args...)
			var out, errs bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errs
			if err := cmd.Start(); err != nil {
				t.Error(err)
				return
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v\n%s%s", key, err, out.String(), errs.String())
				}
			case <-time.After(5 * time.Minute):
				_ = cmd.Process.Kill()
				t.Errorf("%s did not end with the run:\n%s", key, out.String())
			}
			mu.Lock()
			followed[key] = out.String()
			mu.Unlock()
		}()
	}
	kube.Kubectl(t, tknRun, "-n", nsT, "create", "-f", "-")
	kube.Kubectl(t, delegated(tknRun), "-n", nsO, "create", "-f", "-")
	follow("tkn -f tekton", os.Getenv("TKN"), "pr", "logs", "-f", "logs", "-n", nsT)
	follow("pod-runner logs -f", podRunner, "logs", "-f", "logs", "-n", nsO)
	follow("tkn -f ours", os.Getenv("TKN"), "pr", "logs", "-f", "logs", "-n", nsO)
	for _, ns := range []string{nsT, nsO} {
		kube.WaitFor(t, 5*time.Minute, "logs in "+ns+" to end", func() bool { return getPipelineRun(t, ns, "logs").IsDone() })
	}
	if pr := getPipelineRun(t, nsT, "logs"); !pr.IsSuccessful() {
		t.Fatalf("Tekton's run ended %+v: the case is wrong", pr.Status.Conditions)
	}
	wg.Wait()

	norm := tknNormaliser(nsT, nsO)
	same := func(what, tekton, ours string) {
		t.Helper()
		if a, b := norm(tekton), norm(ours); a != b {
			t.Errorf("%s differs:\n%s\nTekton's:\n%s\nours:\n%s", what, lineDiff(a, b), tekton, ours)
		}
	}
	for _, args := range [][]string{
		{"pr", "list"},
		{"pr", "describe", "logs"},
		{"tr", "list"},
		{"tr", "describe", "logs-first"},
		{"tr", "describe", "logs-report"},
	} {
		tekton, ours := tkn(append(args, "-n", nsT)...), tkn(append(args, "-n", nsO)...)
		if args[0] == "tr" && args[1] == "describe" && !strings.Contains(tekton, "\nTimeout:") {
			// A TaskRun's spec.timeout, when neither the PipelineTask nor
			// the run sets one, is filled by Tekton's defaulting webhook
			// (TaskRunSpec.SetDefaults: default-timeout-minutes), which
			// tektonlocal does not run; ours applies the same defaults.
			ours = strings.Replace(ours, "Timeout:           1h0m0s\n", "", 1)
		}
		same("tkn "+strings.Join(args, " "), tekton, ours)
	}

	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(podRunner, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("pod-runner %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	tektonLogs := tkn("pr", "logs", "logs", "-n", nsT)
	if !strings.Contains(tektonLogs, "[first : one] one says alpha") || !strings.Contains(tektonLogs, "[report : say] report says Succeeded") {
		t.Fatalf("Tekton's tkn pr logs:\n%s", tektonLogs)
	}
	same("pod-runner logs vs tkn pr logs", tektonLogs, run("logs", "logs", "-n", nsO))
	same("pod-runner logs TASK vs tkn pr logs -t TASK", tkn("pr", "logs", "logs", "-t", "second", "-n", nsT), run("logs", "logs", "second", "-n", nsO))
	same("pod-runner logs --taskrun vs tkn tr logs", tkn("tr", "logs", "logs-first", "-n", nsT), run("logs", "--taskrun", "logs-first", "-n", nsO))
	// Followed, TaskRuns that overlap interleave their lines (tkn follows
	// each TaskRun in its own goroutine); ours overlap by milliseconds
	// where Tekton's are seconds apart. Each TaskRun's lines must match.
	same("pod-runner logs -f vs tkn pr logs -f (by task)", byTask(followed["tkn -f tekton"]), byTask(followed["pod-runner logs -f"]))

	// The Dashboard's log view asks for each step's log by
	// status.podName and status.steps[].container (its fetchLogs): that
	// request gives the step's own output.
	for _, ns := range []string{nsT, nsO} {
		tr := getTaskRun(t, ns, "logs-first")
		if got := kube.Kubectl(t, "", "-n", ns, "logs", tr.Status.PodName, "-c", tr.Status.Steps[0].Container); got != "one says alpha\none again\n" {
			t.Errorf("in %s, the Dashboard's request for step %s gets %q", ns, tr.Status.Steps[0].Name, got)
		}
	}

	// Plain tkn on ours: every step container of the Pod under each
	// TaskRun, the supervisor (a native sidecar) under none.
	plain := map[string]string{
		"tkn pr logs":    tkn("pr", "logs", "logs", "-n", nsO),
		"tkn tr logs":    tkn("tr", "logs", "logs-first", "-n", nsO),
		"tkn pr logs -f": followed["tkn -f ours"],
	}
	for what, out := range plain {
		if strings.Contains(out, strings.TrimSpace(sidecar.LinePrefix)) {
			t.Errorf("%s on ours shows the supervisor's status stream:\n%s", what, out)
		}
	}
	if out := plain["tkn tr logs"]; !strings.Contains(out, "[first-one] one says alpha") || !strings.Contains(out, "[report-say] report says Succeeded") {
		t.Errorf("plain tkn tr logs on ours: want every step container of the shared Pod, got:\n%s", out)
	}
	for what, out := range plain {
		t.Logf("%s (ours):\n%s", what, out)
	}
}

// tknNormaliser makes two tkn outputs comparable: the namespaces, UIDs,
// times and durations (which differ from run to run) replaced, column padding
// (tabwriter's, which follows them) collapsed.
func tknNormaliser(namespaces ...string) func(string) string {
	ago := regexp.MustCompile(`\b(\d+|a few|about a|an?) (second|minute|hour)s? ago\b`)
	dur := regexp.MustCompile(`\b\d+(\.\d+)?(ms|s|m|h)(\d+(\.\d+)?(ms|s|m))*\b`)
	// The changeset of the controller binary that ran it (Tekton's
	// changeset.Get: a clone's commit, "unknown" in a modified tree).
	release := regexp.MustCompile(`pipeline\.tekton\.dev/release=\S+`)
	uid := regexp.MustCompile(`\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	spaces := regexp.MustCompile(`[ \t]+`)
	return func(s string) string {
		for _, ns := range namespaces {
			s = strings.ReplaceAll(s, ns, "NS")
		}
		s = release.ReplaceAllString(s, "pipeline.tekton.dev/release=REL")
		s = uid.ReplaceAllString(s, "UID")
		s = ago.ReplaceAllString(s, "AGO")
		s = dur.ReplaceAllString(s, "DUR")
		s = spaces.ReplaceAllString(s, " ")
		return strings.TrimSpace(s)
	}
}

func TestTknNormaliser(t *testing.T) {
	norm := tknNormaliser("pr-e2e-1")
	for in, want := range map[string]string{
		"logs   2 minutes ago   12s   Succeeded":   "logs AGO DUR Succeeded",
		"Namespace:   pr-e2e-1":                    "Namespace: NS",
		"started 1m3s, took 250ms":                 "started DUR, took DUR",
		"[first : one] one says alpha":             "[first : one] one says alpha",
		"uid=e0a0ffcf-9aea-44c5-9986-d4a9e11da94f": "uid=UID",
		" pipeline.tekton.dev/release=0bd4c31":     "pipeline.tekton.dev/release=REL",
	} {
		if got := norm(in); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
	if fmt.Sprint(norm("a  b")) != "a b" {
		t.Error("padding kept")
	}
}

// lineDiff names the lines where a and b differ.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			fmt.Fprintf(&out, "line %d: Tekton's %q, ours %q\n", i+1, x, y)
		}
	}
	return out.String()
}

// byTask regroups `pipelinerun logs` output by pipeline task, each task's
// lines in their order, and counts the empty lines that end each step.
func byTask(s string) string {
	tasks := map[string][]string{}
	var order []string
	blank := 0
	for _, l := range strings.Split(s, "\n") {
		if l == "" {
			blank++
			continue
		}
		task := "?"
		if i := strings.Index(l, " : "); strings.HasPrefix(l, "[") && i > 0 {
			task = l[1:i]
		}
		if tasks[task] == nil {
			order = append(order, task)
		}
		tasks[task] = append(tasks[task], l)
	}
	sort.Strings(order)
	var out strings.Builder
	for _, task := range order {
		out.WriteString(strings.Join(tasks[task], "\n") + "\n")
	}
	fmt.Fprintf(&out, "%d empty lines\n", blank)
	return out.String()
}

func getTaskRun(t *testing.T, ns, name string) *v1.TaskRun {
	t.Helper()
	tr := &v1.TaskRun{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "taskrun", name, "-o", "json")), tr); err != nil {
		t.Fatal(err)
	}
	return tr
}
