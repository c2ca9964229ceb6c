// Command app greets the world through example.com/greet, which the go
// command fetches from cairn serve (GOPROXY=http://HOST/go).
package main

import (
	"fmt"

	"example.com/greet"
)

func main() { fmt.Println(greet.Hello("world")) }
