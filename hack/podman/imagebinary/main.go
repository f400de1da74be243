// Command imagebinary prints where the pod-runner image must hold the
// binary (podlayout.ImageBinary), so that the image build and the injector
// cannot disagree.
package main

import (
	"fmt"

	"github.com/e7763abc/pod-runner/internal/podlayout"
)

func main() { fmt.Println(podlayout.ImageBinary) }
