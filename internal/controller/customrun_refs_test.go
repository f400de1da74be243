package controller

import (
	"context"
	"strings"
	"testing"

	podpipeline "github.com/e7763abc/pod-runner/api/podpipeline/v1alpha1"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/yaml"
)

func TestCustomRunInvalid(t *testing.T) {
	podPipeline := func(name, spec string) client.Object {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte("metadata: {name: "+name+", namespace: ci}\nspec:\n"+spec), &u.Object); err != nil {
			t.Fatal(err)
		}
		u.SetGroupVersionKind(podpipeline.GVK)
		return u
	}
	byRef := func(name, ref string) *v1beta1.CustomRun {
		run := customRun(name, groupSpec, "")
		run.Spec.CustomSpec = nil
		run.Spec.CustomRef = &v1beta1.TaskRef{APIVersion: podpipeline.APIVersion, Kind: podpipeline.Kind, Name: ref}
		return run
	}
	cases := []struct {
		name    string
		run     *v1beta1.CustomRun
		objs    []client.Object
		reason  string
		message string
	}{
		{"unknown field", customRun("f", "      pipelineSpc: {}\n", ""), nil, "PipelineValidationFailed",
			`cluster (CustomRun/f): spec.customSpec.spec: not a PodPipeline spec (pipelineSpec or pipelineRef): json: unknown field "pipelineSpc"`},
		// Tekton's reconciler: GetPipelineData fails, CouldntGetPipeline.
		{"empty", customRun("e", "      {}\n", ""), nil, "CouldntGetPipeline",
			"cluster (CustomRun/e): spec.customSpec.spec.pipelineRef, spec.customSpec.spec.pipelineSpec: expected exactly one, got neither"},
		{"no pipeline", customRun("p", "      pipelineRef: {name: missing}\n", ""), nil, "CouldntGetPipeline",
			`cluster (CustomRun/p): spec.customSpec.spec.pipelineRef.name: Pipeline "missing" not found`},
		{"no param", customRun("m", groupSpec, ""), nil, "ParameterMissing", "cluster (CustomRun/m): spec.params"},
		{"no PodPipeline", byRef("r", "gone"), nil, "CouldntGetPipeline", `PodPipeline "gone" not found`},
		{"unnamed customRef", byRef("u", ""), nil, "PipelineValidationFailed", "spec.customRef.name: names no PodPipeline"},
		{"PodPipeline invalid", byRef("v", "pp"), []client.Object{podPipeline("pp", "  pipelineRef: {name: missing}\n")}, "CouldntGetPipeline",
			`cluster (PodPipeline/pp): spec.pipelineRef.name: Pipeline "missing" not found`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "no param" {
				tc.run.Spec.Params = nil
			}
			e := newCustomRunEnv(t, append(tc.objs, sayTask(t), tc.run)...)
			if res := e.reconcileCR(tc.run.Name); res != (ctrl.Result{}) {
				t.Errorf("result %+v: a failed run is not polled", res)
			}
			got := e.run(tc.run.Name)
			c := condition(t, got)
			if c.Status != corev1.ConditionFalse || c.Reason != tc.reason || !strings.Contains(c.Message, tc.message) {
				t.Errorf("condition %+v, want False/%s with %q", c, tc.reason, tc.message)
			}
			if got.Status.StartTime == nil || got.Status.CompletionTime == nil {
				t.Errorf("start %v completion %v", got.Status.StartTime, got.Status.CompletionTime)
			}
			if n := len(e.pods()); n != 0 {
				t.Errorf("%d pods for an invalid group", n)
			}
		})
	}
}

func TestCustomRunByRef(t *testing.T) {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte("metadata: {name: pp, namespace: ci}\nspec:\n"+groupSpec), &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetGroupVersionKind(podpipeline.GVK)
	run := customRun("byref", groupSpec, "")
	run.Spec.CustomSpec = nil
	run.Spec.CustomRef = &v1beta1.TaskRef{APIVersion: podpipeline.APIVersion, Kind: podpipeline.Kind, Name: "pp"}
	e := newCustomRunEnv(t, sayTask(t), u, run)
	e.reconcileCR("byref")
	if pods := e.pods(); len(pods) != 1 || pods[0].Name != "byref" {
		t.Fatalf("%d pods, want byref's", len(pods))
	}
	if c := condition(t, e.run("byref")); !c.IsUnknown() {
		t.Errorf("condition %+v", c)
	}
}

// TestPodPipelineCRDMissing: a customRef to a PodPipeline on a cluster
// without the CRD fails the CustomRun saying so.
func TestPodPipelineCRDMissing(t *testing.T) {
	s, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	run := customRun("nocrd", groupSpec, "")
	run.Spec.CustomSpec = nil
	run.Spec.CustomRef = &v1beta1.TaskRef{APIVersion: podpipeline.APIVersion, Kind: podpipeline.Kind, Name: "pp"}
	c := fake.NewClientBuilder().WithScheme(s).WithStatusSubresource(&v1beta1.CustomRun{}).WithObjects(run).Build()
	// What controller-runtime's REST mapper answers for a kind the API
	// server does not serve.
	c = interceptor.NewClient(c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				return &meta.NoKindMatchError{GroupKind: u.GroupVersionKind().GroupKind(), SearchedVersions: []string{podpipeline.Version}}
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	e := &crEnv{env: &env{t: t, c: c, logs: fakeLogs{}}}
	e.r = e.reconciler()
	e.cr = &CustomRunReconciler{Reconciler: e.r}
	e.reconcileCR("nocrd")
	if c := condition(t, e.run("nocrd")); c.Status != corev1.ConditionFalse || c.Reason != "CouldntGetPipeline" || !strings.Contains(c.Message, "CRD") {
		t.Errorf("condition %+v, want CouldntGetPipeline naming the missing CRD", c)
	}
}
