package podspec

import (
	"context"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// A task's sidecars get containers of their own after its steps', running
// `pod-runner step` like them, with Tekton's sidecar mounts: the task's
// workspaces, none of its /workspace, /tekton/home, results or steps.
func TestSidecarContainers(t *testing.T) {
	c := compileYAML(t, `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: pr}
spec:
  params: [{name: port, value: "8080"}]
  workspaces: [{name: shared, emptyDir: {}}]
  pipelineSpec:
    params: [{name: port}]
    workspaces: [{name: shared}]
    tasks:
    - name: test
      params: [{name: port, value: $(params.port)}, {name: tag, value: "16"}]
      workspaces: [{name: data, workspace: shared}]
      taskSpec:
        params: [{name: port}, {name: tag}]
        workspaces: [{name: data}]
        sidecars:
        - name: server
          image: busybox
          script: httpd -f -p $(params.port) -h $(workspaces.data.path)
          computeResources: {requests: {cpu: 500m, memory: 64Mi}, limits: {memory: 128Mi}}
        - name: db
          image: postgres:$(params.tag)
          env:
          - name: PASSWORD
            valueFrom: {secretKeyRef: {name: db, key: password, optional: true}}
        steps:
        - {name: get, image: busybox, script: "wget -O- localhost:$(params.port)", computeResources: {requests: {cpu: "1", memory: 100Mi}}}
`)
	r := &fakeResolver{cmds: map[string][]string{"postgres:16": {"docker-entrypoint.sh", "postgres"}}}
	pod, err := Pod(context.Background(), c, Options{Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, pod)
	byName := map[string]corev1.Container{}
	var names []string
	for _, ct := range pod.Spec.Containers {
		byName[ct.Name] = ct
		names = append(names, ct.Name)
	}
	server, db := podlayout.SidecarContainer("test", "server"), podlayout.SidecarContainer("test", "db")
	if want := []string{podlayout.SupervisorContainer, "test-get", server, db}; !reflect.DeepEqual(names, want) {
		t.Fatalf("containers %q, want %q", names, want)
	}
	for _, n := range []string{server, db} {
		ct := byName[n]
		if !reflect.DeepEqual(ct.Command, []string{podlayout.Binary, "step"}) || ct.Env[0].Name != podlayout.EnvContainer || ct.Env[0].Value != n {
			t.Errorf("%s: command %q env %+v", n, ct.Command, ct.Env)
		}
		m := mounts(ct)
		if m[podlayout.BinDir].Name == "" || !m[podlayout.BinDir].ReadOnly || m[podlayout.RunDir].Name == "" {
			t.Errorf("%s: no bin or run mount: %+v", n, ct.VolumeMounts)
		}
		if m["/workspace/data"].Name != podlayout.WorkspaceVolume("shared", c.Plan.GetUid()) {
			t.Errorf("%s: workspace mount %+v", n, m["/workspace/data"])
		}
		for _, p := range []string{podlayout.ResultsDir, podlayout.StepsDir, podlayout.WorkspaceDir, podlayout.HomeDir} {
			if _, ok := m[p]; ok {
				t.Errorf("%s mounts %s, which Tekton gives steps only", n, p)
			}
		}
	}
	// The image is substituted when the Pod is made; its entrypoint looked up.
	if got := byName[db].Image; got != "postgres:16@sha256:0" {
		t.Errorf("db image %q", got)
	}
	if e := byName[db].Env; len(e) != 2 || e[1].Name != "PASSWORD" || e[1].ValueFrom.SecretKeyRef.Name != "db" {
		t.Errorf("db env %+v", e)
	}
	// Limits as declared, shared requests on the supervisor: the task's
	// peak is its heaviest step plus its sidecars.
	if l, rq := byName[server].Resources.Limits[corev1.ResourceMemory], byName[server].Resources.Requests[corev1.ResourceMemory]; l.String() != "128Mi" || !rq.IsZero() {
		t.Errorf("server resources %+v", byName[server].Resources)
	}
	sup := byName[podlayout.SupervisorContainer]
	if cpu, mem := sup.Resources.Requests[corev1.ResourceCPU], sup.Resources.Requests[corev1.ResourceMemory]; cpu.Cmp(resource.MustParse("1500m")) != 0 || mem.Cmp(resource.MustParse("164Mi")) != 0 {
		t.Errorf("supervisor requests %v", sup.Resources.Requests)
	}
	// The supervisor's plan has the looked-up command of the sidecar.
	raw, err := podlayout.DecodePlan(sup.Env[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	plan := &planpb.Plan{}
	if err := proto.Unmarshal(raw, plan); err != nil {
		t.Fatal(err)
	}
	if got := plan.GetTasks()[0].GetSpec().GetSidecars()[1].GetCommand(); !reflect.DeepEqual(got, []string{"docker-entrypoint.sh", "postgres", "default-arg"}) {
		t.Errorf("db command in the plan %q", got)
	}
	if c.Plan.GetTasks()[0].GetSpec().GetSidecars()[1].GetCommand() != nil {
		t.Error("the compiled plan was changed")
	}
}

// A sidecar's probes are the supervisor's to run (internal/probe), in the
// Plan: its container carries none, since the kubelet would probe it before
// the supervisor starts the sidecar's process, and a startupProbe (or
// livenessProbe) failing there would kill the container.
func TestSidecarProbesNotOnTheContainer(t *testing.T) {
	c := compileYAML(t, `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: tr}
spec:
  taskSpec:
    sidecars:
    - name: server
      image: busybox
      command: [httpd, -f, -p, "8080"]
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {httpGet: {port: http}}
      startupProbe: {tcpSocket: {port: 8080}, failureThreshold: 30, periodSeconds: 1}
      livenessProbe: {exec: {command: ["true"]}}
    steps:
    - {name: s, image: busybox, script: "true"}
`)
	pod, err := Pod(context.Background(), c, Options{Resolver: &fakeResolver{}})
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, pod)
	found := false
	for _, ct := range pod.Spec.Containers {
		if ct.ReadinessProbe != nil || ct.StartupProbe != nil || ct.LivenessProbe != nil {
			t.Errorf("container %s has a kubelet probe: %+v %+v %+v", ct.Name, ct.ReadinessProbe, ct.StartupProbe, ct.LivenessProbe)
		}
		found = found || ct.Name == podlayout.SidecarContainer("tr", "server")
	}
	if !found {
		t.Fatalf("no sidecar container in %+v", pod.Spec.Containers)
	}
	sc := c.Plan.GetTasks()[0].GetSpec().GetSidecars()[0]
	if sc.GetReadinessProbe().GetHttpGet().GetPort() != 8080 || sc.GetStartupProbe().GetFailureThreshold() != 30 {
		t.Errorf("the plan's sidecar probes %v / %v, want the named port resolved and the startup threshold", sc.GetReadinessProbe(), sc.GetStartupProbe())
	}
}
