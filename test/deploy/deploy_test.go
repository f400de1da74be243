// Package deploy tests config/, the controller's kustomize deployment:
// it builds, runs the controller hardened, and its RBAC allows every call
// the reconciler makes.
package deploy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	podpipeline "github.com/e7763abc/pod-runner/api/podpipeline/v1alpha1"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	resolutionv1beta1 "github.com/tektoncd/pipeline/pkg/apis/resolution/v1beta1"
	"google.golang.org/protobuf/types/known/timestamppb"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/admission"
	"github.com/e7763abc/pod-runner/internal/controller"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// objects is `kubectl kustomize DIR`, decoded.
type objects struct {
	role    rbacv1.ClusterRole
	binding rbacv1.ClusterRoleBinding
	deploy  appsv1.Deployment
	sa      corev1.ServiceAccount
	// leaseRole and leaseBinding: leader election's.
	leaseRole    rbacv1.Role
	leaseBinding rbacv1.RoleBinding
	webhook      *admissionregistrationv1.MutatingWebhookConfiguration
	kinds        []string
}

func build(t *testing.T, dir string) *objects {
	t.Helper()
	testenv.Require(t, "kubectl", testenv.Command("kubectl", "make k8s-build installs it with the local cluster; it builds the kustomization, sigs.k8s.io/kustomize/api being no dependency"))
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", filepath.Join(repoRoot(), dir))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	o := &objects{}
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		o.kinds = append(o.kinds, meta.Kind)
		var into any
		switch meta.Kind {
		case "ClusterRole":
			into = &o.role
		case "ClusterRoleBinding":
			into = &o.binding
		case "Deployment":
			into = &o.deploy
		case "ServiceAccount":
			into = &o.sa
		case "Role":
			into = &o.leaseRole
		case "RoleBinding":
			into = &o.leaseBinding
		case "MutatingWebhookConfiguration":
			o.webhook = &admissionregistrationv1.MutatingWebhookConfiguration{}
			into = o.webhook
		default:
			continue
		}
		if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
			t.Fatalf("%s: %v", meta.Kind, err)
		}
	}
	return o
}

func TestDeployment(t *testing.T) {
	for _, dir := range []string{"config/default", "config/local"} {
		t.Run(dir, func(t *testing.T) {
			o := build(t, dir)
			for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service"} {
				if !slices.Contains(o.kinds, k) {
					t.Errorf("no %s in %v", k, o.kinds)
				}
			}
			spec := o.deploy.Spec.Template.Spec
			if spec.ServiceAccountName != o.sa.Name || o.sa.Namespace != "pod-runner" || o.deploy.Namespace != "pod-runner" {
				t.Errorf("deployment in %q runs as %q; service account %s/%s", o.deploy.Namespace, spec.ServiceAccountName, o.sa.Namespace, o.sa.Name)
			}
			if o.binding.RoleRef.Name != o.role.Name || len(o.binding.Subjects) != 1 ||
				o.binding.Subjects[0].Name != o.sa.Name || o.binding.Subjects[0].Namespace != o.sa.Namespace {
				t.Errorf("binding %+v does not give role %s to %s/%s", o.binding, o.role.Name, o.sa.Namespace, o.sa.Name)
			}
			if len(spec.Containers) != 1 {
				t.Fatalf("%d containers", len(spec.Containers))
			}
			c := spec.Containers[0]
			if len(c.Args) == 0 || c.Args[0] != "controller" {
				t.Errorf("args %q: want `controller`", c.Args)
			}
			// Each endpoint is served on the port the Deployment names.
			for flag, port := range map[string]string{"--metrics-bind-address=": "metrics", "--health-probe-bind-address=": "health"} {
				i := slices.IndexFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, flag) })
				p := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == port })
				if i < 0 || p < 0 || !strings.HasSuffix(c.Args[i], fmt.Sprint(":", c.Ports[p].ContainerPort)) {
					t.Errorf("args %q, ports %+v: want %s served on port %q", c.Args, c.Ports, flag, port)
				}
			}
			for _, probe := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
				if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Port.String() != "health" {
					t.Errorf("probe %+v: want an HTTP probe on the health port", probe)
				}
			}
			// Leader election needs its Lease, in the controller's namespace.
			if slices.Contains(c.Args, "--leader-elect") {
				lease := access{"coordination.k8s.io", "leases", ""}
				for _, verb := range []string{"get", "create", "update"} {
					lease.verb = verb
					if o.leaseRole.Namespace != "pod-runner" || !allows(o.leaseRole.Rules, lease) {
						t.Errorf("role %s/%s does not allow %s", o.leaseRole.Namespace, o.leaseRole.Name, lease)
					}
				}
				if b := o.leaseBinding; b.Namespace != "pod-runner" || b.RoleRef.Name != o.leaseRole.Name || len(b.Subjects) != 1 || b.Subjects[0].Name != o.sa.Name {
					t.Errorf("lease binding %+v does not give %s to %s", b, o.leaseRole.Name, o.sa.Name)
				}
			}
			if c.Image != "localhost/pod-runner-controller:dev" {
				t.Errorf("image %q: the images: entry did not apply", c.Image)
			}
			// local-k8s has no registry and no kube-proxy (its README).
			if dir == "config/local" && (!slices.Contains(c.Args, "--offline") || c.ImagePullPolicy != corev1.PullNever ||
				!spec.HostNetwork || !slices.Contains(c.Env, corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: "127.0.0.1"})) {
				t.Errorf("local: args %q, pull policy %s, hostNetwork %v, env %v", c.Args, c.ImagePullPolicy, spec.HostNetwork, c.Env)
			}
			checkWebhook(t, dir, o, c)
			psc, sc := spec.SecurityContext, c.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
				t.Errorf("pod securityContext %+v: want runAsNonRoot with a non-root uid (the image names no user)", psc)
			}
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("container securityContext %+v", sc)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %+v", c.Resources)
			}
		})
	}
}

// checkWebhook: the admission webhook is configured as the controller
// serves it: the configuration the controller writes its CA into, failing
// open, for runs being created in labelled namespaces, reaching the port
// the controller listens on (through the Service, or on loopback locally).
func checkWebhook(t *testing.T, dir string, o *objects, c corev1.Container) {
	t.Helper()
	w := o.webhook
	if w == nil || len(w.Webhooks) != 1 {
		t.Fatalf("webhook configuration %+v: want one webhook", w)
	}
	if w.Name != "pod-runner" || slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--webhook-configuration=") }) {
		t.Errorf("configuration %q, args %q: want the controller's default, pod-runner", w.Name, c.Args)
	}
	h := w.Webhooks[0]
	if h.FailurePolicy == nil || *h.FailurePolicy != admissionregistrationv1.Ignore || h.SideEffects == nil || *h.SideEffects != admissionregistrationv1.SideEffectClassNone {
		t.Errorf("failurePolicy %v, sideEffects %v: want Ignore and None", h.FailurePolicy, h.SideEffects)
	}
	if h.NamespaceSelector == nil || h.NamespaceSelector.MatchLabels[admission.NamespaceLabel] != "true" || len(h.NamespaceSelector.MatchLabels) != 1 {
		t.Errorf("namespaceSelector %+v: want %s=true only", h.NamespaceSelector, admission.NamespaceLabel)
	}
	if len(h.Rules) != 1 || !slices.Equal(h.Rules[0].Resources, []string{"pipelineruns"}) || !slices.Equal(h.Rules[0].Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create}) {
		t.Errorf("rules %+v: want CREATE of pipelineruns", h.Rules)
	}
	port := ""
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--webhook-port="); ok {
			port = v // the last one wins, as pflag reads them
		}
	}
	p := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "webhook" })
	if port == "" || p < 0 || fmt.Sprint(c.Ports[p].ContainerPort) != port {
		t.Errorf("args %q, ports %+v: want --webhook-port on the port named webhook", c.Args, c.Ports)
	}
	switch dir {
	case "config/local":
		if h.ClientConfig.URL == nil || *h.ClientConfig.URL != "https://127.0.0.1:"+port+admission.Path ||
			!slices.Contains(c.Args, "--webhook-cert-host=127.0.0.1") || !slices.Contains(c.Args, "--webhook-host=127.0.0.1") {
			t.Errorf("local: clientConfig %+v, args %q: want the controller on loopback, its certificate for 127.0.0.1", h.ClientConfig, c.Args)
		}
	default:
		if svc := h.ClientConfig.Service; svc == nil || svc.Name != "pod-runner-webhook" || svc.Namespace != "pod-runner" || svc.Path == nil || *svc.Path != admission.Path {
			t.Errorf("clientConfig %+v: want Service pod-runner/pod-runner-webhook at %s (the certificate's default name)", h.ClientConfig, admission.Path)
		}
	}
}

// access is one authorization check: resource may be resource/subresource.
type access struct{ group, resource, verb string }

func (a access) String() string {
	if a.group == "" {
		return a.verb + " " + a.resource
	}
	return fmt.Sprintf("%s %s.%s", a.verb, a.resource, a.group)
}

func allows(rules []rbacv1.PolicyRule, a access) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, a.group) && slices.Contains(r.Resources, a.resource) && slices.Contains(r.Verbs, a.verb) {
			return true
		}
	}
	return false
}

// recorder notes every access the reconciler makes through its clients.
type recorder struct {
	mu  sync.Mutex
	got map[access]bool
}

func (r *recorder) add(a access) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[a] = true
}

func resourceOf(c client.Client, obj client.Object) (string, string) {
	gvk, err := c.GroupVersionKindFor(obj)
	if err != nil {
		panic(err)
	}
	return gvk.Group, strings.ToLower(gvk.Kind) + "s"
}

// intercept records the calls through c: cached reads (the manager's
// informers) need list and watch, direct reads get.
func (r *recorder) intercept(cached bool) interceptor.Funcs {
	read := func(c client.WithWatch, obj client.Object) {
		g, res := resourceOf(c, obj)
		if cached {
			r.add(access{g, res, "list"})
			r.add(access{g, res, "watch"})
		} else {
			r.add(access{g, res, "get"})
		}
	}
	return interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			read(c, obj)
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			return errors.New("the recorder does not map lists yet: add it")
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			g, res := resourceOf(c, obj)
			r.add(access{g, res, "create"})
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			g, res := resourceOf(c, obj)
			r.add(access{g, res, "update"})
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			g, res := resourceOf(c, obj)
			r.add(access{g, res, "patch"})
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			g, res := resourceOf(c, obj)
			r.add(access{g, res, "delete"})
			return c.Delete(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			g, res := resourceOf(c, obj)
			r.add(access{g, res + "/" + sub, "update"})
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			g, res := resourceOf(c, obj)
			r.add(access{g, res + "/" + sub, "patch"})
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	}
}

type logs struct {
	rec *recorder
	log string
}

func (l *logs) Log(context.Context, string, string, string) (io.ReadCloser, error) {
	l.rec.add(access{"", "pods/log", "get"})
	return io.NopCloser(strings.NewReader(l.log)), nil
}

type execer struct{ rec *recorder }

func (e execer) Exec(context.Context, string, string, string, []string) error {
	// client-go's WebSocket exec is authorized as create since
	// Kubernetes 1.30 (get before).
	e.rec.add(access{"", "pods/exec", "create"})
	return nil
}

const defsYAML = `
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: ci}
data: {greeting: hi}
---
apiVersion: tekton.dev/v1beta1
kind: StepAction
metadata: {name: say, namespace: ci}
spec:
  image: busybox
  script: echo hi
---
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: echo, namespace: ci}
spec:
  workspaces: [{name: cfg}]
  steps:
  - name: say
    ref: {name: say}
  - name: env
    image: busybox
    script: echo $GREETING
    env: [{name: GREETING, valueFrom: {secretKeyRef: {name: token, key: value}}}]
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: build, namespace: ci}
spec:
  workspaces: [{name: cfg}]
  tasks:
  - name: first
    taskRef: {name: echo}
    workspaces: [{name: cfg, workspace: cfg}]
`

// remoteRunYAML's Task comes from a resolver (remoteTaskYAML).
const remoteRunYAML = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: remote, namespace: ci, uid: uid-remote}
spec:
  managedBy: pod-runner.dev/controller
  pipelineSpec:
    tasks:
    - name: t
      taskRef: {resolver: git, params: [{name: url, value: "git://127.0.0.1/repo"}, {name: pathInRepo, value: t.yaml}]}
`

const remoteTaskYAML = `apiVersion: tekton.dev/v1
kind: Task
metadata: {name: t}
spec:
  steps: [{name: s, image: busybox, script: "true"}]
`

const runYAML = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: %s, namespace: ci, uid: uid-%s}
spec:
  managedBy: pod-runner.dev/controller
  pipelineRef: {name: %s}
  workspaces: [{name: cfg, configMap: {name: settings}}]
`

// groupYAML are PodPipeline CustomRuns as Tekton's controller creates them
// for a pipeline task: one embedding the PodPipeline, one naming it.
const groupYAML = `
apiVersion: tekton.dev/v1beta1
kind: CustomRun
metadata: {name: embedded, namespace: ci, uid: uid-embedded}
spec:
  workspaces: [{name: cfg, configMap: {name: settings}}]
  customSpec:
    apiVersion: pod-runner.dev/v1alpha1
    kind: PodPipeline
    spec:
      pipelineRef: {name: build}
---
apiVersion: tekton.dev/v1beta1
kind: CustomRun
metadata: {name: byref, namespace: ci, uid: uid-byref}
spec:
  workspaces: [{name: cfg, configMap: {name: settings}}]
  customRef: {apiVersion: pod-runner.dev/v1alpha1, kind: PodPipeline, name: group}
`

func decodeAll(t *testing.T, y string) []client.Object {
	t.Helper()
	var out []client.Object
	for _, doc := range strings.Split(y, "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		var obj client.Object
		switch meta.Kind {
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "Secret":
			obj = &corev1.Secret{}
		case "StepAction":
			obj = &v1beta1.StepAction{}
		case "Task":
			obj = &v1.Task{}
		case "Pipeline":
			obj = &v1.Pipeline{}
		case "PipelineRun":
			obj = &v1.PipelineRun{}
		case "CustomRun":
			obj = &v1beta1.CustomRun{}
		default:
			t.Fatalf("kind %q", meta.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatal(err)
		}
		out = append(out, obj)
	}
	return out
}

func ts(sec int64) *timestamppb.Timestamp { return &timestamppb.Timestamp{Seconds: 1767000000 + sec} }

func supervisorLog(events ...*planpb.Event) string {
	var b bytes.Buffer
	p := sidecar.NewPublisher(&b)
	for _, e := range events {
		p.Report(e)
	}
	return b.String()
}

// TestRBACCoversTheReconciler runs the reconciler through a run's life —
// an invalid run, a run with a StepAction, a ConfigMap workspace and a
// Secret, its Pod, its TaskRun, a graceful cancel, a cancel — and checks
// that the ClusterRole allows every call it made, and grants nothing it
// never needs.
func TestRBACCoversTheReconciler(t *testing.T) {
	o := build(t, "config/default")
	scheme, err := controller.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{got: map[access]bool{}}
	objs := decodeAll(t, defsYAML+"\n---\n"+fmt.Sprintf(runYAML, "good", "good", "build")+"\n---\n"+fmt.Sprintf(runYAML, "bad", "bad", "missing")+"\n---\n"+remoteRunYAML)
	objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "token", Namespace: "ci"}, StringData: map[string]string{"value": "x"}})
	// The runs' ServiceAccount lists one Secret Tekton's creds-init takes
	// (annotated) and one it does not.
	objs = append(objs,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "ci"},
			Secrets: []corev1.ObjectReference{{Name: "git-auth"}, {Name: "token"}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git-auth", Namespace: "ci", Annotations: map[string]string{"tekton.dev/git-0": "https://127.0.0.1"}},
			Type: corev1.SecretTypeBasicAuth, Data: map[string][]byte{"username": []byte("u"), "password": []byte("secret-value")}})
	objs = append(objs, decodeAll(t, groupYAML)...)
	podPipeline := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "group", "namespace": "ci"},
		"spec":     map[string]any{"pipelineRef": map[string]any{"name": "build"}},
	}}
	podPipeline.SetGroupVersionKind(podpipeline.GVK)
	objs = append(objs, podPipeline)
	// The PodPipeline kind is known, as config/crd makes it known.
	mapper := meta.NewDefaultRESTMapper(nil)
	for gvk := range scheme.AllKnownTypes() {
		mapper.Add(gvk, meta.RESTScopeNamespace)
	}
	mapper.Add(podpipeline.GVK, meta.RESTScopeNamespace)
	base := fake.NewClientBuilder().WithScheme(scheme).WithRESTMapper(mapper).
		WithStatusSubresource(&v1.PipelineRun{}, &v1.TaskRun{}, &corev1.Pod{}, &v1beta1.CustomRun{}).
		WithObjects(objs...)
	store := base.Build()
	cached := interceptor.NewClient(store, rec.intercept(true))
	direct := interceptor.NewClient(store, rec.intercept(false))
	lg := &logs{rec: rec}
	r := &controller.Reconciler{Client: cached, Reader: direct, Logs: lg, Exec: execer{rec}}
	ctx := context.Background()
	reconcile := func(name string) {
		t.Helper()
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ci", Name: name}}); err != nil {
			t.Fatalf("reconcile %s: %v", name, err)
		}
	}
	reconcile("bad")
	reconcile("good")

	// A remote ref: its ResolutionRequest created, then answered.
	reconcile("remote")
	rrs := &resolutionv1beta1.ResolutionRequestList{}
	if err := store.List(ctx, rrs, client.InNamespace("ci")); err != nil || len(rrs.Items) != 1 {
		t.Fatalf("ResolutionRequests %d, %v: want the remote run's one", len(rrs.Items), err)
	}
	answered := rrs.Items[0].DeepCopy()
	answered.Status.Data = base64.StdEncoding.EncodeToString([]byte(remoteTaskYAML))
	if err := store.Update(ctx, answered); err != nil {
		t.Fatal(err)
	}
	reconcile("remote")
	if err := store.Get(ctx, client.ObjectKey{Namespace: "ci", Name: "remote"}, &corev1.Pod{}); err != nil {
		t.Fatalf("no pod for the remote run: %v", err)
	}

	// The webhook's CA, put in its configuration at start.
	whScheme := kruntime.NewScheme()
	if err := admissionregistrationv1.AddToScheme(whScheme); err != nil {
		t.Fatal(err)
	}
	whStore := fake.NewClientBuilder().WithScheme(whScheme).WithObjects(o.webhook).Build()
	ca, err := admission.Bootstrap(t.TempDir(), []string{"pod-runner-webhook.pod-runner.svc"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := admission.InjectCABundle(ctx, interceptor.NewClient(whStore, rec.intercept(false)), o.webhook.Name, ca); err != nil {
		t.Fatal(err)
	}

	pod := &corev1.Pod{}
	if err := store.Get(ctx, client.ObjectKey{Namespace: "ci", Name: "good"}, pod); err != nil {
		t.Fatalf("no pod: %v", err)
	}
	// The ServiceAccount's annotated Secret is mounted by name, its value
	// nowhere in the Pod.
	podJSON, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(podJSON), `"secretName":"git-auth"`) || strings.Contains(string(podJSON), "secret-value") {
		t.Errorf("the Pod mounts git-auth: %v; holds its value: %v", strings.Contains(string(podJSON), `"secretName":"git-auth"`), strings.Contains(string(podJSON), "secret-value"))
	}
	running := &planpb.Condition{Status: "Unknown", Reason: "Running"}
	lg.log = supervisorLog(
		&planpb.Event{Time: ts(1), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "good", StartTime: ts(1), Condition: running}}},
		&planpb.Event{Time: ts(2), Kind: &planpb.Event_Task{Task: &planpb.TaskStatus{Name: "first", StartTime: ts(2), Condition: running}}})
	now := metav1.Now()
	pod.Status.StartTime = &now
	pod.Status.Phase = corev1.PodRunning
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: podlayout.SupervisorContainer, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}
	if err := store.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	reconcile("good")

	for _, status := range []v1.PipelineRunSpecStatus{v1.PipelineRunSpecStatusCancelledRunFinally, v1.PipelineRunSpecStatusCancelled} {
		pr := &v1.PipelineRun{}
		if err := store.Get(ctx, client.ObjectKey{Namespace: "ci", Name: "good"}, pr); err != nil {
			t.Fatal(err)
		}
		pr.Spec.Status = status
		if err := store.Update(ctx, pr); err != nil {
			t.Fatal(err)
		}
		reconcile("good")
	}

	// PodPipeline CustomRuns, embedded and by customRef: a Pod and TaskRun
	// each, then a cancel.
	crs := &controller.CustomRunReconciler{Reconciler: &controller.Reconciler{Client: cached, Reader: direct, Logs: lg, Exec: execer{rec}}}
	for _, name := range []string{"embedded", "byref"} {
		req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ci", Name: name}}
		if _, err := crs.Reconcile(ctx, req); err != nil {
			t.Fatalf("reconcile CustomRun %s: %v", name, err)
		}
		pod := &corev1.Pod{}
		if err := store.Get(ctx, client.ObjectKey{Namespace: "ci", Name: name}, pod); err != nil {
			t.Fatalf("no pod for CustomRun %s: %v", name, err)
		}
		pod.Status.StartTime = &now
		pod.Status.Phase = corev1.PodRunning
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: podlayout.SupervisorContainer, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}
		if err := store.Status().Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
		if _, err := crs.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
		run := &v1beta1.CustomRun{}
		if err := store.Get(ctx, req.NamespacedName, run); err != nil {
			t.Fatal(err)
		}
		run.Spec.Status = v1beta1.CustomRunSpecStatusCancelled
		if err := store.Update(ctx, run); err != nil {
			t.Fatal(err)
		}
		if _, err := crs.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}

	// What no fake client sees: the manager watches the runs and what they
	// own, and controller-runtime's recorder writes Events.
	need := map[access]bool{
		{"tekton.dev", "pipelineruns", "watch"}: true,
		{"tekton.dev", "taskruns", "watch"}:     true,
		{"", "pods", "watch"}:                   true,
		{"events.k8s.io", "events", "create"}:   true,
		{"events.k8s.io", "events", "patch"}:    true,
		// Owner references that block deletion need this where
		// OwnerReferencesPermissionEnforcement is on.
		{"tekton.dev", "pipelineruns/finalizers", "update"}:      true,
		{"tekton.dev", "customruns", "watch"}:                    true,
		{"resolution.tekton.dev", "resolutionrequests", "watch"}: true,
		{"tekton.dev", "customruns/finalizers", "update"}:        true,
		// client-go's exec falls back to SPDY, authorized as get.
		{"", "pods/exec", "get"}: true,
	}
	for a := range rec.got {
		need[a] = true
	}
	// The calls the scenario must have exercised, so that the check means
	// something.
	for _, a := range []access{
		{"tekton.dev", "pipelines", "get"}, {"tekton.dev", "tasks", "get"}, {"tekton.dev", "stepactions", "get"},
		{"", "configmaps", "get"}, {"", "pods", "create"}, {"", "pods/log", "get"},
		{"", "pods/exec", "create"}, {"tekton.dev", "taskruns", "create"}, {"tekton.dev", "taskruns/status", "update"},
		{"tekton.dev", "pipelineruns/status", "update"},
		{"tekton.dev", "customruns/status", "update"}, {"pod-runner.dev", "podpipelines", "get"},
		{"resolution.tekton.dev", "resolutionrequests", "create"},
		{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch"},
	} {
		if !rec.got[a] {
			t.Errorf("the scenario never made %s: the reconciler changed, update it", a)
		}
	}
	var missing []string
	for a := range need {
		if !allows(o.role.Rules, a) {
			missing = append(missing, a.String())
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("config/default/clusterrole.yaml does not allow:\n  %s", strings.Join(missing, "\n  "))
	}
	// A Secret is only ever got by name (the ServiceAccount's, for Tekton's
	// creds-init: its type and annotations), never listed or watched; the
	// kubelet reads its data.
	if !rec.got[access{"", "secrets", "get"}] || rec.got[access{"", "secrets", "list"}] || rec.got[access{"", "secrets", "watch"}] {
		t.Errorf("the controller's Secret reads: get %v, list %v, watch %v; want get only",
			rec.got[access{"", "secrets", "get"}], rec.got[access{"", "secrets", "list"}], rec.got[access{"", "secrets", "watch"}])
	}
	for _, rule := range o.role.Rules {
		if slices.Contains(rule.Resources, "secrets") && (!slices.Equal(rule.Verbs, []string{"get"}) || len(rule.ResourceNames) > 0) {
			t.Errorf("config/default/clusterrole.yaml grants %v on secrets; want get", rule.Verbs)
		}
		if slices.Contains(rule.Resources, "configmaps") && !slices.Equal(rule.ResourceNames, []string{"feature-flags", "config-defaults"}) {
			t.Errorf("config/default/clusterrole.yaml grants configmaps beyond Tekton's configuration: resourceNames %v", rule.ResourceNames)
		}
	}
	// Least privilege: every granted verb is one the controller needs.
	// Deleting or patching Pods happen on paths this scenario may not take
	// (a Pod not started).
	maybe := map[access]bool{
		{"", "pods", "delete"}: true, {"", "pods", "patch"}: true,
		{"tekton.dev", "taskruns", "patch"}: true, {"tekton.dev", "taskruns", "get"}: true,
		{"tekton.dev", "pipelineruns", "get"}: true, {"", "pods", "get"}: true,
		{"tekton.dev", "customruns", "get"}: true,
	}
	for _, rule := range o.role.Rules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					if a := (access{g, res, v}); !need[a] && !maybe[a] {
						t.Errorf("config/default/clusterrole.yaml grants %s, which the controller never does", a)
					}
				}
			}
		}
	}
}
