package v1alpha1

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

func TestIsPodPipeline(t *testing.T) {
	tests := []struct {
		name string
		spec v1beta1.CustomRunSpec
		want bool
	}{
		{"by customRef", v1beta1.CustomRunSpec{CustomRef: &v1beta1.TaskRef{APIVersion: APIVersion, Kind: Kind, Name: "g"}}, true},
		{"embedded", v1beta1.CustomRunSpec{CustomSpec: &v1beta1.EmbeddedCustomRunSpec{TypeMeta: runtime.TypeMeta{APIVersion: APIVersion, Kind: Kind}}}, true},
		{"another kind of the group", v1beta1.CustomRunSpec{CustomRef: &v1beta1.TaskRef{APIVersion: APIVersion, Kind: "Wait"}}, false},
		{"another version", v1beta1.CustomRunSpec{CustomSpec: &v1beta1.EmbeddedCustomRunSpec{TypeMeta: runtime.TypeMeta{APIVersion: Group + "/v1", Kind: Kind}}}, false},
		{"neither", v1beta1.CustomRunSpec{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsPodPipeline(&v1beta1.CustomRun{Spec: tt.spec}); got != tt.want {
				t.Errorf("IsPodPipeline = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCRDMatchesTypes: config/crd declares this package's group, version
// and kind, and spec's fields as PodPipelineSpec's JSON names them.
func TestCRDMatchesTypes(t *testing.T) {
	b, err := os.ReadFile("../../../config/crd/podpipelines.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(b, &crd); err != nil {
		t.Fatal(err)
	}
	if crd.Spec.Group != Group || crd.Spec.Names.Kind != Kind || len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != Version {
		t.Fatalf("CRD declares %s %s %v, want %s %s [%s]", crd.Spec.Group, crd.Spec.Names.Kind, crd.Spec.Versions, Group, Kind, Version)
	}
	var declared []string
	for name := range crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties {
		declared = append(declared, name)
	}
	var fields []string
	st := reflect.TypeFor[PodPipelineSpec]()
	for i := range st.NumField() {
		fields = append(fields, strings.Split(st.Field(i).Tag.Get("json"), ",")[0])
	}
	slices.Sort(declared)
	slices.Sort(fields)
	if !slices.Equal(declared, fields) {
		t.Errorf("CRD spec fields %v, PodPipelineSpec's %v", declared, fields)
	}
}
