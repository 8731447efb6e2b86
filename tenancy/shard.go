package tenancy

import (
	"fmt"
	"hash/fnv"
	"strconv"
)

// MaxGatewayShards is the largest number of gateway shards a deployment may
// use (provision.Config.GatewayShards, router.Config.GatewayShards).
const MaxGatewayShards = 10_000

// ShardOf returns the gateway shard, in [0, n), of the tenant whose key is k:
// the 32-bit FNV-1a hash of the key's bytes modulo n. With n <= 1 it is 0.
//
// The function is part of bulkhead's stable contract: the provisioner grants
// a tenant's runtime role to the login of this shard and the router connects
// as that login to serve the tenant, and both compute it independently, with
// no catalog column. It will not change between releases; changing n moves
// most tenants to another shard (see provision.Provisioner.Reshard).
func ShardOf(k Key, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(k))
	return int(h.Sum32() % uint32(n))
}

// GatewayShardRole returns the name of shard i's gateway login, derived from
// the gateway role's name: "<gateway>_s<i>". With shards disabled (n <= 1)
// it is the gateway itself.
func GatewayShardRole(gateway string, i, n int) string {
	if n <= 1 {
		return gateway
	}
	return gateway + "_s" + strconv.Itoa(i)
}

// ValidateGatewayShards reports whether n gateway shards of gateway can be
// used: 0 to MaxGatewayShards, and every shard login's name within
// PostgreSQL's 63-byte identifier limit.
func ValidateGatewayShards(gateway string, n int) error {
	if n < 0 || n > MaxGatewayShards {
		return fmt.Errorf("tenancy: %d gateway shards; must be 0 to %d", n, MaxGatewayShards)
	}
	if n > 1 {
		if longest := GatewayShardRole(gateway, n-1, n); len(longest) > 63 {
			return fmt.Errorf("tenancy: gateway shard login %q is longer than 63 bytes; use a shorter gateway role name", longest)
		}
	}
	return nil
}
