package process

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/internal/syncbuf"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Locally a sidecar's probes hold the steps back as in a Pod: an exec probe
// runs on the host with the sidecar's environment and working directory,
// an httpGet probe reaches what listens on the loopback; a readiness probe
// that never passes ends in the task's timeout.
func TestSidecarProbesLocally(t *testing.T) {
	var served atomic.Int32 // the HTTP server answers 503 twice, then 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if served.Add(1) <= 2 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	httpPort, _ := strconv.Atoi(u.Port())

	for _, c := range []struct {
		name      string
		sidecar   string // script; {dir} is the sidecar's working directory
		readiness *planpb.Probe
		timeout   time.Duration
		step      string
		stepAfter time.Duration
		wantTask  string
		wantLog   string
	}{
		{
			name:    "exec, ready after a delay, in the sidecar's dir and env",
			sidecar: "sleep 0.5; echo $TOKEN > ready; exec sleep 60",
			readiness: &planpb.Probe{PeriodSeconds: 1, Action: &planpb.Probe_Exec{Exec: &planpb.ExecAction{
				Command: []string{"sh", "-c", `grep -qx "$TOKEN" ready`}}}},
			step: "grep -qx s3cret {dir}/ready", stepAfter: 500 * time.Millisecond,
			wantTask: reasons.Succeeded,
		},
		{
			name:    "httpGet on the loopback",
			sidecar: "exec sleep 60",
			readiness: &planpb.Probe{PeriodSeconds: 1, Action: &planpb.Probe_HttpGet{HttpGet: &planpb.HTTPGetAction{
				Port: int32(httpPort), Path: "/"}}},
			step: "true", stepAfter: 2 * time.Second,
			wantTask: reasons.Succeeded, wantLog: "Readiness probe failed: HTTP probe failed with statuscode: 503: warming up",
		},
		{
			name:    "never ready: the task's timeout",
			sidecar: "exec sleep 60",
			readiness: &planpb.Probe{PeriodSeconds: 1, Action: &planpb.Probe_Exec{Exec: &planpb.ExecAction{
				Command: []string{"false"}}}},
			timeout: time.Second, step: "true",
			wantTask: reasons.TaskTimeout, wantLog: `Readiness probe failed: exec ["false"] exited with code 1`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			sub := strings.NewReplacer("{dir}", dir).Replace
			task := &planpb.Task{
				Name: "t", TaskRunName: "tr",
				Spec: &planpb.TaskSpec{
					Sidecars: []*planpb.Step{{Name: "server", Script: c.sidecar, WorkingDir: dir,
						Env: []*planpb.EnvVar{{Name: "TOKEN", Value: "s3cret"}}, ReadinessProbe: c.readiness}},
					Steps: []*planpb.Step{{Name: "s", Script: sub(c.step)}},
				},
			}
			if c.timeout > 0 {
				task.Timeout = durationpb.New(c.timeout)
			}
			plan := &planpb.Plan{Version: planpb.Version, Kind: planpb.RunKind_TASK_RUN, Name: "tr", Tasks: []*planpb.Task{task}}
			log := &syncbuf.Buffer{}
			l := New(Options{Dir: t.TempDir(), Grace: testGrace, Log: log})
			begin := time.Now()
			st, err := (&supervisor.Supervisor{Plan: plan, Launcher: l}).Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(begin); took > 10*time.Second {
				t.Errorf("the run took %v", took)
			}
			ts := st.GetTasks()[0]
			if got := ts.GetCondition().GetReason(); got != c.wantTask {
				t.Errorf("task reason %q, want %q (%v)\nlog:\n%s", got, c.wantTask, ts.GetCondition(), log)
			}
			if !strings.Contains(log.String(), c.wantLog) {
				t.Errorf("log:\n%s\nwant it to say %q", log, c.wantLog)
			}
			step := stepState(st, "t", "s")
			if c.wantTask != reasons.Succeeded {
				if step.GetReason() == reasons.StepCompleted {
					t.Errorf("the step ran although the sidecar never got ready: %v", step)
				}
				return
			}
			sc := ts.GetSidecars()[0]
			if gap := step.GetStartedAt().AsTime().Sub(sc.GetStartedAt().AsTime()); gap < c.stepAfter {
				t.Errorf("the step started %v after its sidecar, want at least %v", gap, c.stepAfter)
			}
			if got := fmt.Sprintf("%s %d", sc.GetReason(), sc.GetExitCode()); got != "Completed 143" {
				t.Errorf("sidecar %s, want it stopped after the steps (Completed 143)", got)
			}
		})
	}
}
