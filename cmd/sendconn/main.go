// Command sendconn manages Send connectors and runs the transport that
// delivers mail through them.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], newApp(systemStreams(), os.Getenv)))
}
