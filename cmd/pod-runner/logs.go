//go:build !inpod

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/e7763abc/pod-runner/internal/runlogs"
)

func init() { commands["logs"] = logsMain }

// logsMain is `pod-runner logs PIPELINERUN [TASK...]` and `pod-runner logs
// --taskrun TASKRUN`: tkn's `pipelinerun logs` and `taskrun logs` output,
// each TaskRun with its own steps only (tkn shows every container of the
// shared Pod under each).
func logsMain(args []string) int {
	fs := pflag.NewFlagSet("logs", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: pod-runner logs [flags] PIPELINERUN [TASK...]\n       pod-runner logs [flags] --taskrun TASKRUN\nflags:\n%s", fs.FlagUsages())
	}
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig (default: $KUBECONFIG, then ~/.kube/config)")
	namespace := fs.StringP("namespace", "n", "", "namespace (default: the kubeconfig context's)")
	follow := fs.BoolP("follow", "f", false, "stream the logs while the run goes on, until it is done")
	taskRun := fs.String("taskrun", "", "print the logs of TaskRun `NAME` (as tkn taskrun logs does)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if (*taskRun == "") == (fs.NArg() == 0) || (*taskRun != "" && fs.NArg() > 0) {
		fs.Usage()
		return 2
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: *namespace}})
	cfg, err := cc.ClientConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner logs: kubeconfig: %v\n", err)
		return 2
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner logs: kubeconfig: %v\n", err)
		return 2
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner logs: %v\n", err)
		return 2
	}
	tekton, err := versioned.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner logs: %v\n", err)
		return 2
	}
	r := &runlogs.Reader{Source: runlogs.Kube{Kube: kube, Tekton: tekton},
		Options: runlogs.Options{Namespace: ns, Follow: *follow, Out: os.Stdout, Err: os.Stderr}}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *taskRun != "" {
		err = r.TaskRun(ctx, *taskRun)
	} else {
		r.Tasks = fs.Args()[1:]
		err = r.PipelineRun(ctx, fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner logs: %v\n", err)
		return 1
	}
	return 0
}
