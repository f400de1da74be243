package compile

import (
	"testing"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// sidecarRun is a TaskRun whose one sidecar has the given YAML lines
// (indented as its fields) after its name, image and ports.
func sidecarRun(fields string) string {
	return `apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: tr
spec:
  taskSpec:
    sidecars:
    - name: server
      image: busybox
      command: [sleep, infinity]
      ports:
      - {name: http, containerPort: 8080}
      - {name: admin, containerPort: 9090}
` + fields + `
    steps:
    - {name: s, image: busybox, script: "true"}
`
}

func TestSidecarProbes(t *testing.T) {
	for _, c := range []struct {
		name                       string
		fields                     string
		wantReadiness, wantStartup *planpb.Probe
	}{
		{
			name: "exec, with the API server's defaults",
			fields: `      readinessProbe:
        exec: {command: [sh, -c, "test -f /ready"]}`,
			wantReadiness: &planpb.Probe{TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
				Action: &planpb.Probe_Exec{Exec: &planpb.ExecAction{Command: []string{"sh", "-c", "test -f /ready"}}}},
		},
		{
			name: "httpGet on a named port, its timing kept",
			fields: `      readinessProbe:
        httpGet:
          port: admin
          path: /healthz?full=1
          scheme: HTTPS
          host: 127.0.0.1
          httpHeaders: [{name: X-Probe, value: "1"}]
        initialDelaySeconds: 2
        periodSeconds: 1
        timeoutSeconds: 5
        successThreshold: 2
        failureThreshold: 7`,
			wantReadiness: &planpb.Probe{InitialDelaySeconds: 2, TimeoutSeconds: 5, PeriodSeconds: 1, SuccessThreshold: 2, FailureThreshold: 7,
				Action: &planpb.Probe_HttpGet{HttpGet: &planpb.HTTPGetAction{Scheme: "HTTPS", Host: "127.0.0.1", Port: 9090, Path: "/healthz?full=1",
					Headers: []*planpb.HTTPHeader{{Name: "X-Probe", Value: "1"}}}}},
		},
		{
			name: "httpGet defaults: HTTP, path /",
			fields: `      startupProbe:
        httpGet: {port: 8080}`,
			wantStartup: &planpb.Probe{TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
				Action: &planpb.Probe_HttpGet{HttpGet: &planpb.HTTPGetAction{Scheme: "HTTP", Port: 8080, Path: "/"}}},
		},
		{
			name: "tcpSocket on a named port, and a grpc startup probe",
			fields: `      readinessProbe:
        tcpSocket: {port: http}
      startupProbe:
        grpc: {port: 9090, service: db}
        failureThreshold: 30
        periodSeconds: 1`,
			wantReadiness: &planpb.Probe{TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
				Action: &planpb.Probe_TcpSocket{TcpSocket: &planpb.TCPSocketAction{Port: 8080}}},
			wantStartup: &planpb.Probe{TimeoutSeconds: 1, PeriodSeconds: 1, SuccessThreshold: 1, FailureThreshold: 30,
				Action: &planpb.Probe_Grpc{Grpc: &planpb.GRPCAction{Port: 9090, Service: "db"}}},
		},
		{
			name:   "no probe",
			fields: ``,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := mustCompile(t, sidecarRun(c.fields), Options{}).Plan
			sc := p.GetTasks()[0].GetSpec().GetSidecars()[0]
			diff(t, "readinessProbe", sc.GetReadinessProbe(), c.wantReadiness)
			diff(t, "startupProbe", sc.GetStartupProbe(), c.wantStartup)
		})
	}
}

func TestSidecarProbesRefused(t *testing.T) {
	const doc, at = "in.yaml#1 (TaskRun/tr)", "spec.taskSpec.sidecars[0]."
	var tests []invalidInput
	for _, c := range []struct{ name, fields, field, msg string }{
		{"unknown named port", "      readinessProbe:\n        httpGet: {port: metrics}",
			"readinessProbe.httpGet.port", `port "metrics" is not the name of one of the sidecar's ports (the sidecar's ports are named "http", "admin")`},
		{"named tcp port unknown", "      startupProbe:\n        tcpSocket: {port: nope}",
			"startupProbe.tcpSocket.port", `port "nope" is not the name of one of the sidecar's ports`},
		{"port out of range", "      readinessProbe:\n        tcpSocket: {port: 70000}",
			"readinessProbe.tcpSocket.port", "must be between 1 and 65535, not 70000"},
		{"grpc port zero", "      readinessProbe:\n        grpc: {port: 0}",
			"readinessProbe.grpc.port", "must be between 1 and 65535, not 0"},
		{"two actions", "      readinessProbe:\n        exec: {command: [\"true\"]}\n        tcpSocket: {port: 8080}",
			"readinessProbe", "may have only one of exec, httpGet, tcpSocket or grpc, not exec and tcpSocket"},
		{"no action", "      readinessProbe:\n        periodSeconds: 1",
			"readinessProbe", "a probe needs one of exec, httpGet, tcpSocket or grpc"},
		{"empty exec", "      readinessProbe:\n        exec: {command: []}",
			"readinessProbe.exec.command", "an exec probe needs a command"},
		{"startup successThreshold", "      startupProbe:\n        exec: {command: [\"true\"]}\n        successThreshold: 2",
			"startupProbe.successThreshold", "must be 1 for a startupProbe, not 2"},
		{"negative period", "      readinessProbe:\n        exec: {command: [\"true\"]}\n        periodSeconds: -1",
			"readinessProbe.periodSeconds", "must be greater than or equal to 0, not -1"},
		{"bad scheme", "      readinessProbe:\n        httpGet: {port: 8080, scheme: FTP}",
			"readinessProbe.httpGet.scheme", `must be HTTP or HTTPS, not "FTP"`},
	} {
		tests = append(tests, invalidInput{name: c.name, in: sidecarRun(c.fields), doc: doc, field: at + c.field, msg: c.msg})
	}
	runInvalid(t, tests)
}

// TestSidecarProbesInPipeline: a pipeline task's sidecar carries its probe
// too.
func TestSidecarProbesInPipeline(t *testing.T) {
	in := `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: run
spec:
  pipelineSpec:
    tasks:
    - name: t
      taskSpec:
        sidecars:
        - name: db
          image: busybox
          readinessProbe:
            tcpSocket: {port: 5432}
        steps:
        - {name: s, image: busybox, script: "true"}
`
	sc := mustCompile(t, in, Options{}).Plan.GetTasks()[0].GetSpec().GetSidecars()[0]
	if sc.GetReadinessProbe().GetTcpSocket().GetPort() != 5432 {
		t.Errorf("sidecar %s: readinessProbe %v, want tcpSocket 5432", sc.GetName(), sc.GetReadinessProbe())
	}
}
