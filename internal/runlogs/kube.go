package runlogs

import (
	"context"
	"io"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Kube is a Source on the API server.
type Kube struct {
	Kube   kubernetes.Interface
	Tekton versioned.Interface
}

func (k Kube) PipelineRun(ctx context.Context, namespace, name string) (*v1.PipelineRun, error) {
	return k.Tekton.TektonV1().PipelineRuns(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (k Kube) TaskRun(ctx context.Context, namespace, name string) (*v1.TaskRun, error) {
	return k.Tekton.TektonV1().TaskRuns(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (k Kube) Log(ctx context.Context, namespace, pod, container string, follow bool) (io.ReadCloser, error) {
	return k.Kube.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: follow}).Stream(ctx)
}
