package podspec

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/e7763abc/pod-runner/internal/secrettest"
	sigsyaml "sigs.k8s.io/yaml"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

func compileYAML(t *testing.T, in string) *compile.Compiled {
	t.Helper()
	docs, err := load.Read("test.yaml", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	c, err := compile.Compile(context.Background(), docs, compile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const longTask = "a-task-name-long-enough-that-its-containers-need-shortening-x"

// pipeline binds every kind of workspace: an emptyDir shared by two tasks,
// a Secret and a PVC for one task each, a ConfigMap, a volumeClaimTemplate,
// and an optional workspace left unbound.
const pipelineYAML = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: build
  labels: {team: a}
  annotations: {note: kept}
spec:
  workspaces:
  - {name: shared, emptyDir: {}}
  - {name: creds, secret: {secretName: creds}}
  - {name: cache, persistentVolumeClaim: {claimName: cache-pvc}}
  - {name: settings, configMap: {name: settings, items: [{key: mode, path: conf/mode}]}}
  - name: scratch
    volumeClaimTemplate:
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 1Gi}}
  pipelineSpec:
    workspaces: [{name: shared}, {name: creds}, {name: cache}, {name: settings}, {name: scratch}, {name: extra, optional: true}]
    tasks:
    - name: fetch
      workspaces: [{name: out, workspace: shared, subPath: src}, {name: creds, workspace: creds}]
      taskSpec:
        workspaces: [{name: out}, {name: creds, mountPath: /creds, readOnly: true}]
        results: [{name: rev}]
        steps:
        - image: busybox
          script: echo abc > $(results.rev.path)
          computeResources: {requests: {cpu: "1", memory: 1Gi}, limits: {memory: 2Gi}}
        - name: check
          image: busybox
          command: [ls]
          envFrom: [{secretRef: {name: creds}, prefix: CREDS_}]
          env:
          - name: MAYBE
            valueFrom: {secretKeyRef: {name: absent, key: k, optional: true}}
    - name: ` + longTask + `
      runAfter: [fetch]
      params: [{name: rev, value: $(tasks.fetch.results.rev)}]
      workspaces: [{name: src, workspace: shared}, {name: cache, workspace: cache}, {name: cfg, workspace: settings}, {name: tmp, workspace: scratch}]
      taskSpec:
        params: [{name: rev}]
        workspaces: [{name: src}, {name: cache}, {name: cfg}, {name: tmp}, {name: opt, optional: true}]
        steps:
        - name: compile-with-an-equally-long-step-name
          image: golang:1.26
          command: [go, build]
          computeResources: {requests: {cpu: 500m, memory: 3Gi}, limits: {cpu: "2"}}
    finally:
    - name: report
      taskSpec:
        steps:
        - image: busybox
          script: echo done
          computeResources: {requests: {cpu: "3"}}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: s3cret}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
`

func mounts(c corev1.Container) map[string]corev1.VolumeMount {
	m := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		m[vm.MountPath] = vm
	}
	return m
}

func volumes(p *corev1.Pod) map[string]corev1.Volume {
	m := map[string]corev1.Volume{}
	for _, v := range p.Spec.Volumes {
		m[v.Name] = v
	}
	return m
}

func TestPipelinePod(t *testing.T) {
	c := compileYAML(t, pipelineYAML)
	pod, err := Pod(context.Background(), c, Options{Image: "pr:test"})
	if err != nil {
		t.Fatal(err)
	}
	uid := c.Plan.GetUid()
	vol := func(n string) string { return podlayout.VolumeName(n, uid) }
	ws := func(n string) string { return podlayout.WorkspaceVolume(n, uid) }
	checkValid(t, pod)

	if pod.Name != "build" || pod.Namespace != "default" || pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("pod %s/%s restartPolicy %q", pod.Namespace, pod.Name, pod.Spec.RestartPolicy)
	}
	for k, v := range map[string]string{"team": "a", "tekton.dev/pipelineRun": "build", "tekton.dev/pipelineRunUID": uid, "tekton.dev/pipeline": "build", ManagedByLabel: ManagedBy} {
		if pod.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, pod.Labels[k], v)
		}
	}
	if pod.Annotations["note"] != "kept" || pod.Annotations[InitContainerTypeAnnotation] != "always" {
		t.Errorf("annotations = %v", pod.Annotations)
	}

	// Init container installs the binary into the bin volume.
	if len(pod.Spec.InitContainers) != 1 {
		t.Fatalf("init containers: %d", len(pod.Spec.InitContainers))
	}
	ic := pod.Spec.InitContainers[0]
	if ic.Name != podlayout.InitContainer || ic.Image != "pr:test" || !reflect.DeepEqual(ic.Command, []string{podlayout.ImageBinary, "init", podlayout.BinDir}) ||
		mounts(ic)[podlayout.BinDir].Name != vol(podlayout.BinVolume) {
		t.Errorf("init container = %+v", ic)
	}

	// Supervisor first, then every step of every task, finally last.
	var names []string
	for _, ct := range pod.Spec.Containers {
		names = append(names, ct.Name)
	}
	wantNames := []string{
		podlayout.SupervisorContainer,
		"fetch-unnamed-0", "fetch-check",
		podlayout.StepContainer(longTask, "compile-with-an-equally-long-step-name"),
		"report-unnamed-0",
	}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("containers = %q, want %q", names, wantNames)
	}
	if n := names[3]; len(n) > 63 || !strings.HasPrefix(n, "a-task-name") {
		t.Errorf("long container name %q", n)
	}

	sup := pod.Spec.Containers[0]
	if !reflect.DeepEqual(sup.Command, []string{podlayout.ImageBinary, "supervise"}) || sup.Image != "pr:test" ||
		sup.TerminationMessagePath != podlayout.TerminationLog ||
		mounts(sup)[podlayout.RunDir].Name != vol(podlayout.RunVolume) || mounts(sup)[podlayout.StateDir].Name != vol(podlayout.StateVolume) {
		t.Errorf("supervisor = %+v", sup)
	}
	// The plan decodes back to the compiled one.
	if len(sup.Env) != 1 || sup.Env[0].Name != podlayout.EnvPlan {
		t.Fatalf("supervisor env = %+v", sup.Env)
	}
	raw, err := podlayout.DecodePlan(sup.Env[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	got := &planpb.Plan{}
	if err := proto.Unmarshal(raw, got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, c.Plan) {
		t.Errorf("decoded plan differs from the compiled one")
	}
	// Peak: fetch (1 cpu, 1Gi) → build (500m, 3Gi); finally 3 cpu.
	if cpu, mem := sup.Resources.Requests[corev1.ResourceCPU], sup.Resources.Requests[corev1.ResourceMemory]; cpu.Cmp(resource.MustParse("3")) != 0 || mem.Cmp(resource.MustParse("3Gi")) != 0 {
		t.Errorf("supervisor requests = %v", sup.Resources.Requests)
	}

	byName := map[string]corev1.Container{}
	for _, ct := range pod.Spec.Containers {
		byName[ct.Name] = ct
	}
	fetch, check, build, report := byName["fetch-unnamed-0"], byName["fetch-check"], byName[names[3]], byName["report-unnamed-0"]
	for _, ct := range []corev1.Container{fetch, check, build, report} {
		if !reflect.DeepEqual(ct.Command, []string{podlayout.Binary, "step"}) || len(ct.Args) != 0 {
			t.Errorf("%s: command %q args %q", ct.Name, ct.Command, ct.Args)
		}
		if ct.Env[0].Name != podlayout.EnvContainer || ct.Env[0].Value != ct.Name {
			t.Errorf("%s: env %+v", ct.Name, ct.Env)
		}
		m := mounts(ct)
		if bin := m[podlayout.BinDir]; bin.Name != vol(podlayout.BinVolume) || !bin.ReadOnly {
			t.Errorf("%s: bin mount %+v", ct.Name, bin)
		}
		if m[podlayout.RunDir].Name != vol(podlayout.RunVolume) {
			t.Errorf("%s: run mount %+v", ct.Name, m[podlayout.RunDir])
		}
		for _, vm := range ct.VolumeMounts {
			// podman 4.3 ignores subPath on an emptyDir: only a user's
			// workspace binding may carry one.
			if vm.SubPath != "" && vm.MountPath != "/workspace/out" {
				t.Errorf("%s: mount %+v has a subPath", ct.Name, vm)
			}
		}
	}
	if fetch.Image != "busybox" || build.Image != "golang:1.26" {
		t.Errorf("images %q %q", fetch.Image, build.Image)
	}

	// Each task mounts only its own results and steps volumes, which the
	// supervisor mounts where podlaunch reads them.
	if sup.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("supervisor terminationMessagePolicy %q", sup.TerminationMessagePolicy)
	}
	supMounts := mounts(sup)
	taskVols := map[string]string{}
	for ct, task := range map[*corev1.Container]string{&fetch: "fetch", &check: "fetch", &build: longTask, &report: "report"} {
		m := mounts(*ct)
		for _, dir := range []struct{ inTask, kind string }{{podlayout.ResultsDir, "results"}, {podlayout.StepsDir, "steps"}} {
			got := m[dir.inTask]
			sm := supMounts[podlayout.StateDir+"/"+podlayout.TaskDir(task)+"/"+dir.kind]
			// /tekton/steps holds links the supervisor makes: read-only.
			if got.Name == "" || got.SubPath != "" || got.ReadOnly != (dir.kind == "steps") || sm.Name != got.Name || sm.SubPath != "" || sm.ReadOnly {
				t.Errorf("%s: %s mount %+v, the supervisor's %+v", ct.Name, dir.kind, got, sm)
			}
			if v := volumes(pod)[got.Name]; v.EmptyDir == nil {
				t.Errorf("%s: %s volume %+v is no emptyDir", ct.Name, dir.kind, v)
			}
			key := task + "/" + dir.kind
			if prev, ok := taskVols[key]; ok && prev != got.Name {
				t.Errorf("steps of %s mount different %s volumes: %s, %s", task, dir.kind, prev, got.Name)
			}
			taskVols[key] = got.Name
		}
	}
	// Each step's own directory (/tekton/run/INDEX) is writable in its
	// own container only, and the supervisor mounts it.
	for i, ct := range []corev1.Container{fetch, check} {
		m := mounts(ct)
		for j := range 2 {
			got := m[fmt.Sprintf("%s/%d", podlayout.RunStepsDir, j)]
			sm := supMounts[fmt.Sprintf("%s/fetch/run/%d", podlayout.StateDir, j)]
			if got.Name == "" || got.ReadOnly != (i != j) || sm.Name != got.Name || sm.ReadOnly {
				t.Errorf("%s: /tekton/run/%d mount %+v, the supervisor's %+v", ct.Name, j, got, sm)
			}
		}
	}
	seenVol := map[string]string{}
	for key, v := range taskVols {
		if other, ok := seenVol[v]; ok {
			t.Errorf("%s and %s share volume %s", key, other, v)
		}
		seenVol[v] = key
	}
	if len(taskVols) != 6 {
		t.Errorf("results and steps volumes of three tasks: %v", taskVols)
	}
	// Steps of a task share its /workspace and /tekton/home; tasks do not.
	if mounts(fetch)[podlayout.WorkspaceDir].Name != mounts(check)[podlayout.WorkspaceDir].Name ||
		mounts(fetch)[podlayout.WorkspaceDir].Name == mounts(build)[podlayout.WorkspaceDir].Name ||
		mounts(fetch)[podlayout.HomeDir].Name == mounts(report)[podlayout.HomeDir].Name {
		t.Errorf("per-task emptyDirs shared wrongly")
	}

	// The emptyDir workspace is one volume, in both tasks that bind it.
	if m := mounts(fetch)["/workspace/out"]; m.Name != ws("shared") || m.SubPath != "src" {
		t.Errorf("fetch out = %+v", m)
	}
	if m := mounts(build)["/workspace/src"]; m.Name != ws("shared") || m.SubPath != "" {
		t.Errorf("build src = %+v", m)
	}
	vs := volumes(pod)
	if v := vs[ws("shared")]; v.EmptyDir == nil || v.EmptyDir.Medium != "" {
		t.Errorf("shared volume = %+v", v)
	}
	// The Secret is mounted into fetch's containers only, read-only.
	if m := mounts(fetch)["/creds"]; m.Name != ws("creds") || !m.ReadOnly {
		t.Errorf("fetch creds = %+v", m)
	}
	for _, ct := range []corev1.Container{build, report, sup} {
		for _, m := range ct.VolumeMounts {
			if m.Name == ws("creds") {
				t.Errorf("%s mounts the Secret of fetch", ct.Name)
			}
		}
	}
	// PVC, ConfigMap (items kept) and the claim template for build only.
	if m := mounts(build)["/workspace/cache"]; m.Name != ws("cache") || vs[ws("cache")].PersistentVolumeClaim.ClaimName != "cache-pvc" {
		t.Errorf("cache = %+v %+v", m, vs[ws("cache")])
	}
	if cm := vs[ws("settings")].ConfigMap; cm == nil || cm.Name != "settings" || len(cm.Items) != 1 || cm.Items[0] != (corev1.KeyToPath{Key: "mode", Path: "conf/mode"}) {
		t.Errorf("settings volume = %+v", vs[ws("settings")])
	}
	if e := vs[ws("scratch")].Ephemeral; e == nil || e.VolumeClaimTemplate.Spec.Resources.Requests.Storage().String() != "1Gi" {
		t.Errorf("scratch volume = %+v", vs[ws("scratch")])
	}
	// The optional workspace the run leaves unbound is not mounted.
	for _, m := range build.VolumeMounts {
		if strings.Contains(m.MountPath, "opt") || strings.Contains(m.Name, "extra") {
			t.Errorf("unbound optional workspace mounted: %+v", m)
		}
	}

	// The Secret and the ConfigMap by their own names, for the kubelet to
	// read: no byte of theirs is in the Pod.
	if sec := vs[ws("creds")].Secret; sec == nil || sec.SecretName != "creds" || len(sec.Items) != 0 {
		t.Errorf("creds volume = %+v", vs[ws("creds")])
	}
	podYAML, err := sigsyaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	if leak := secrettest.Find(string(podYAML), "s3cret"); leak != "" {
		t.Errorf("the Pod holds the Secret's value (%s)", leak)
	}
	// Build lists the documents the run refers to, as given, then the Pod.
	list, err := Build(context.Background(), c, Options{Image: "pr:test"})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, it := range list.Items {
		switch o := it.Object.(type) {
		case *corev1.Secret:
			kinds = append(kinds, "Secret/"+o.Name)
			if o.StringData["token"] != "s3cret" || len(o.Data) != 0 {
				t.Errorf("the Secret is not as given: %+v", o)
			}
		case *corev1.ConfigMap:
			kinds = append(kinds, "ConfigMap/"+o.Name)
		case *corev1.Pod:
			kinds = append(kinds, "Pod")
		}
	}
	if want := []string{"Secret/creds", "ConfigMap/settings", "Pod"}; !slices.Equal(kinds, want) {
		t.Errorf("Build = %v, want %v", kinds, want)
	}

	// Step resources: limits as declared, shared requests moved to the supervisor.
	if l, r := fetch.Resources.Limits[corev1.ResourceMemory], fetch.Resources.Requests[corev1.ResourceMemory]; l.String() != "2Gi" || !r.IsZero() {
		t.Errorf("fetch resources = %+v", fetch.Resources)
	}
	if _, ok := fetch.Resources.Requests[corev1.ResourceCPU]; ok {
		t.Errorf("fetch has a cpu request without a cpu limit: %+v", fetch.Resources)
	}
	if l, r := build.Resources.Limits[corev1.ResourceCPU], build.Resources.Requests[corev1.ResourceCPU]; l.String() != "2" || !r.IsZero() {
		t.Errorf("build resources = %+v", build.Resources)
	}
	// valueFrom env is left to the kubelet.
	if e := check.Env; len(e) != 2 || e[1].Name != "MAYBE" || e[1].ValueFrom.SecretKeyRef.Name != "absent" || !*e[1].ValueFrom.SecretKeyRef.Optional {
		t.Errorf("check env = %+v", check.Env)
	}
	if f := check.EnvFrom; len(f) != 1 || f[0].Prefix != "CREDS_" || f[0].SecretRef == nil || f[0].SecretRef.Name != "creds" {
		t.Errorf("check envFrom = %+v", check.EnvFrom)
	}
}

// TestVolumeNamesPerRun: two runs of the same PipelineRun (two uids) share
// no Pod volume name (podman shares emptyDirs by name).
func TestVolumeNamesPerRun(t *testing.T) {
	a, b := compileYAML(t, pipelineYAML), compileYAML(t, pipelineYAML)
	pa, err := Pod(context.Background(), a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := Pod(context.Background(), b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, v := range pa.Spec.Volumes {
		names[v.Name] = true
		if !strings.HasSuffix(v.Name, podlayout.RunSuffix(a.Plan.GetUid())) {
			t.Errorf("volume %q lacks the run's suffix", v.Name)
		}
	}
	for _, v := range pb.Spec.Volumes {
		if names[v.Name] {
			t.Errorf("volume %q in both runs", v.Name)
		}
	}
	// A pod-runner run's $(workspaces.W.volume) names the Pod volume.
	for _, tk := range a.Plan.GetTasks() {
		for k, v := range tk.GetContext() {
			if strings.HasSuffix(k, ".volume") && !names[v] {
				t.Errorf("%s: %s = %q, not a volume of the Pod", tk.GetName(), k, v)
			}
		}
	}
}

// checkValid applies the checks of Kubernetes' ValidatePod that
// apimachinery exports (k8s.io/kubernetes itself cannot be imported): names,
// labels, mounts naming volumes, no mount path twice in a container.
func checkValid(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	for _, msg := range validation.IsDNS1123Subdomain(pod.Name) {
		t.Errorf("pod name %q: %s", pod.Name, msg)
	}
	for k, v := range pod.Labels {
		for _, msg := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
			t.Errorf("label %s=%s: %s", k, v, msg)
		}
	}
	vs := volumes(pod)
	if len(vs) != len(pod.Spec.Volumes) {
		t.Errorf("duplicate volume names")
	}
	for _, v := range pod.Spec.Volumes {
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			t.Errorf("volume %q: %s", v.Name, msg)
		}
	}
	seen := map[string]bool{}
	for _, ct := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		for _, msg := range validation.IsDNS1123Label(ct.Name) {
			t.Errorf("container %q: %s", ct.Name, msg)
		}
		if seen[ct.Name] {
			t.Errorf("container %q twice", ct.Name)
		}
		seen[ct.Name] = true
		paths := map[string]bool{}
		for _, m := range ct.VolumeMounts {
			if _, ok := vs[m.Name]; !ok {
				t.Errorf("%s mounts unknown volume %q", ct.Name, m.Name)
			}
			if paths[m.MountPath] {
				t.Errorf("%s mounts %s twice", ct.Name, m.MountPath)
			}
			paths[m.MountPath] = true
		}
		for n, q := range ct.Resources.Requests {
			if l, ok := ct.Resources.Limits[n]; ok && q.Cmp(l) > 0 {
				t.Errorf("%s: request %s above limit", ct.Name, n)
			}
		}
	}
}

// As a native sidecar the supervisor is the init container after the one
// that installs the binary, restarted Always (what makes it a sidecar) and
// told so; the Pod's containers are then the steps alone, which is all tkn
// and the Dashboard list. Nothing else differs.
func TestNativeSidecarPod(t *testing.T) {
	c := compileYAML(t, pipelineYAML)
	plain, err := Pod(context.Background(), c, Options{Image: "pr:test"})
	if err != nil {
		t.Fatal(err)
	}
	pod, err := Pod(context.Background(), c, Options{Image: "pr:test", NativeSidecar: true})
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, pod)
	if len(pod.Spec.InitContainers) != 2 || pod.Spec.InitContainers[0].Name != podlayout.InitContainer {
		t.Fatalf("init containers %v", pod.Spec.InitContainers)
	}
	sup := pod.Spec.InitContainers[1]
	if sup.RestartPolicy == nil || *sup.RestartPolicy != corev1.ContainerRestartPolicyAlways ||
		!reflect.DeepEqual(sup.Command, []string{podlayout.ImageBinary, "supervise", "--native-sidecar"}) {
		t.Errorf("supervisor restartPolicy %v, command %q", sup.RestartPolicy, sup.Command)
	}
	want := plain.Spec.Containers[0]
	want.RestartPolicy, want.Command = sup.RestartPolicy, sup.Command
	// The Plan's bytes vary with map order; its content must not.
	decode := func(c corev1.Container) *planpb.Plan {
		raw, err := podlayout.DecodePlan(c.Env[0].Value)
		p := &planpb.Plan{}
		if err == nil {
			err = proto.Unmarshal(raw, p)
		}
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if !proto.Equal(decode(sup), decode(want)) {
		t.Errorf("the sidecar's Plan differs")
	}
	want.Env = sup.Env
	if !reflect.DeepEqual(sup, want) {
		t.Errorf("supervisor as a sidecar differs beyond its restart policy and flag:\n%+v\n%+v", sup, want)
	}
	if !reflect.DeepEqual(pod.Spec.Containers, plain.Spec.Containers[1:]) {
		t.Errorf("containers differ from the plain Pod's steps")
	}
	for _, ct := range pod.Spec.Containers {
		if ct.Name == podlayout.SupervisorContainer {
			t.Errorf("the supervisor is among the containers")
		}
	}
}
