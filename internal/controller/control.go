package controller

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	//lint:ignore SA1019 client-go v0.35's remotecommand returns this package's UpgradeFailureError, not k8s.io/streaming's.
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/e7763abc/pod-runner/internal/podlayout"
)

// ControlAnnotation on a run's Pod records the last request handed to its
// supervisor (`pod-runner control ACTION`), so that each is sent once,
// across reconciles and controller restarts.
const ControlAnnotation = "pod-runner.dev/control"

// Control actions, as `pod-runner control` names them.
const (
	ActionCancelRunFinally = "cancel-run-finally"
	ActionStopRunFinally   = "stop-run-finally"
)

// Executor runs a command in a container of a Pod through the API server
// (pods/exec), as `kubectl exec` does.
type Executor interface {
	Exec(ctx context.Context, namespace, pod, container string, command []string) error
}

// gracefulAction is the request spec.status makes of a running supervisor:
// CancelledRunFinally and StoppedRunFinally let finally run, so the Pod
// must keep running and be told; "" for any other status.
func gracefulAction(pr *v1.PipelineRun) string {
	switch {
	case pr.IsGracefullyCancelled():
		return ActionCancelRunFinally
	case pr.IsGracefullyStopped():
		return ActionStopRunFinally
	}
	return ""
}

// signal hands a graceful cancel or stop to the Pod's supervisor, once:
// the Pod's ControlAnnotation records that it was taken. A supervisor not
// running yet is told on a later reconcile.
func (r *Reconciler) signal(ctx context.Context, pod *corev1.Pod, action string) error {
	if pod.Annotations[ControlAnnotation] == action {
		return nil
	}
	if cs := containerStatus(pod, podlayout.SupervisorContainer); cs == nil || cs.State.Running == nil {
		return nil
	}
	if r.Exec == nil {
		return fmt.Errorf("cannot tell pod %s to %s: the controller has no pods/exec", pod.Name, action)
	}
	cmd := []string{podlayout.ImageBinary, "control", action}
	if err := r.Exec.Exec(ctx, pod.Namespace, pod.Name, podlayout.SupervisorContainer, cmd); err != nil {
		return fmt.Errorf("tell pod %s to %s: %w", pod.Name, action, err)
	}
	patch := client.MergeFrom(pod.DeepCopy())
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[ControlAnnotation] = action
	if err := r.Client.Patch(ctx, pod, patch); err != nil {
		return fmt.Errorf("record %s on pod %s: %w", action, pod.Name, err)
	}
	return nil
}

// PodExec runs commands through the API server's pods/exec: over
// WebSocket, falling back to SPDY for an API server that does not upgrade
// to it (kubectl's choice).
type PodExec struct {
	Config    *rest.Config
	Clientset kubernetes.Interface
}

// Exec runs command in the container and fails when it exits non-zero,
// with what it printed.
func (p PodExec) Exec(ctx context.Context, namespace, pod, container string, command []string) error {
	req := p.Clientset.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Container: container, Command: command, Stdout: true, Stderr: true,
	}, scheme.ParameterCodec)
	spdy, err := remotecommand.NewSPDYExecutor(p.Config, "POST", req.URL())
	if err != nil {
		return fmt.Errorf("pods/exec over SPDY: %w", err)
	}
	ws, err := remotecommand.NewWebSocketExecutor(p.Config, "GET", req.URL().String())
	if err != nil {
		return fmt.Errorf("pods/exec over WebSocket: %w", err)
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return fmt.Errorf("pods/exec: %w", err)
	}
	var out bytes.Buffer
	if err := exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &out}); err != nil {
		return fmt.Errorf("exec %s in %s/%s -c %s: %w: %s", strings.Join(command, " "), namespace, pod, container, err, strings.TrimSpace(out.String()))
	}
	return nil
}
