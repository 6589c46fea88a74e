// Command caddy: Caddy with the modules of compose/caddy/Dockerfile's xcaddy build (the standard
// ones plus github.com/mholt/caddy-ratelimit), built offline by tests/tools/caddy.sh.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/mholt/caddy-ratelimit"
)

func main() {
	caddycmd.Main()
}
