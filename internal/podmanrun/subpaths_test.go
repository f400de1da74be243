package podmanrun

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestSplitSubPaths(t *testing.T) {
	p := &corev1.Pod{Spec: corev1.PodSpec{
		Volumes: []corev1.Volume{
			{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
			{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
		},
		Containers: []corev1.Container{
			{Name: "whole", VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/workspace/all"}}},
			{Name: "a", VolumeMounts: []corev1.VolumeMount{
				{Name: "shared", MountPath: "/workspace/src", SubPath: "a/src"},
				{Name: "cm", MountPath: "/cm", SubPath: "key"},
			}},
			{Name: "b", VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/workspace/src", SubPath: "b/src/", ReadOnly: true}}},
		},
	}}
	if !SplitSubPaths(p) {
		t.Fatal("nothing split")
	}
	got := map[string][]string{}
	for _, c := range p.Spec.Containers {
		for _, m := range c.VolumeMounts {
			got[c.Name] = append(got[c.Name], fmt.Sprintf("%s:%s:%s:%v", m.Name, m.MountPath, m.SubPath, m.ReadOnly))
		}
	}
	va, vb := got["a"][0][:strings.Index(got["a"][0], ":")], got["b"][0][:strings.Index(got["b"][0], ":")]
	want := map[string][]string{
		"whole": {"shared:/workspace/all::false", va + ":/workspace/all/a/src::false", vb + ":/workspace/all/b/src::false"},
		"a":     {va + ":/workspace/src::false", "cm:/cm:key:false"},
		"b":     {vb + ":/workspace/src::true"},
	}
	if va == vb || !strings.HasPrefix(va, "shared-") {
		t.Errorf("split volumes %q and %q", va, vb)
	}
	for c, w := range want {
		if strings.Join(got[c], " ") != strings.Join(w, " ") {
			t.Errorf("%s mounts:\n got %v\nwant %v", c, got[c], w)
		}
	}
	if n := len(p.Spec.Volumes); n != 4 || p.Spec.Volumes[2].EmptyDir.Medium != corev1.StorageMediumMemory {
		t.Errorf("volumes: %+v", p.Spec.Volumes)
	}
}
