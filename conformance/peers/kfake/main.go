// Command refka-kfake runs franz-go's in-process fake Kafka cluster (kfake) as a
// standalone broker so that refka's conformance suite can be pointed at it.
//
//	refka-kfake -ports 39092,39093,39094 [-auto-create-topics]
//
// Each port is one kfake broker listening on 127.0.0.1 (kfake binds loopback
// only). Once the cluster is up it prints one line, "listening ADDR[,ADDR...]",
// and then serves until SIGTERM or SIGINT, when it closes the cluster and exits.
// State lives in memory: every start is a new, empty cluster.
//
// refka builds this with `go build` (conformance/peers.py) against the kfake
// version pinned in go.mod; it has no behaviour of its own beyond kfake's options.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func parsePorts(list string) ([]int, error) {
	var ports []int
	for _, field := range strings.Split(list, ",") {
		port, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || port <= 0 || port > 65535 {
			return nil, fmt.Errorf("bad port %q in -ports", field)
		}
		ports = append(ports, port)
	}
	return ports, nil
}

func main() {
	portList := flag.String("ports", "", "comma-separated ports, one kfake broker each (required)")
	autoCreate := flag.Bool("auto-create-topics", false, "create topics named by Metadata requests that ask for it")
	flag.Parse()
	ports, err := parsePorts(*portList)
	if err != nil || len(ports) == 0 {
		fmt.Fprintln(os.Stderr, "refka-kfake: -ports PORT[,PORT...] is required:", err)
		os.Exit(2)
	}
	options := []kfake.Opt{kfake.Ports(ports...)}
	if *autoCreate {
		options = append(options, kfake.AllowAutoTopicCreation())
	}
	cluster, err := kfake.NewCluster(options...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "refka-kfake: cannot start:", err)
		os.Exit(1)
	}
	fmt.Println("listening", strings.Join(cluster.ListenAddrs(), ","))

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	cluster.Close()
}
