# The nixpkgs nodes of a flake.lock that the root really reaches, with
# every follows path resolved from the root as nix resolves it; nodes
# nothing reaches are not counted. The same rule as the Go audit
# (pipelines/quality/secscan/lock.go, whose tests run this file too).
#
# Output, one line per node, the flake's own nixpkgs first (the root's
# `nixpkgs` input, or without one the nearest):
#   own<TAB>NODE<TAB>INPUT/PATH
#   extra<TAB>NODE<TAB>INPUT/PATH<TAB>the flake.nix line that removes it
. as $lock
| ($lock.root // "root") as $root
| def resolve($edge; $depth):
    if $depth > 64 then null
    elif ($edge | type) == "string" then (if $lock.nodes[$edge] then $edge else null end)
    elif ($edge | type) == "array" then
      reduce $edge[] as $in ($root;
        if . == null then null
        else ($lock.nodes[.].inputs[$in] // null) as $next
          | if $next == null then null else resolve($next; $depth + 1) end
        end)
    else null end;
  def isnixpkgs:
    [.original, .locked] | map(select(. != null)) | any(
      .type as $t
      | ((.repo // "") | ascii_downcase) as $repo
      | ((.url // "") | ascii_downcase) as $u
      | ((($t == "github" or $t == "gitlab" or $t == "sourcehut") and $repo == "nixpkgs")
        or ($t == "indirect" and .id == "nixpkgs")
        or ($t == "git" and ($u | sub("/$"; "") | sub("\\.git$"; "") | endswith("/nixpkgs")))
        or (($t == "tarball" or $t == "file")
          and (($u | contains("/nixpkgs/archive/")) or (($u | contains("nixos.org/")) and ($u | contains("nixexprs")))))));
  def follows:
    map(if test("^[A-Za-z_][A-Za-z0-9_'-]*$") then . else tojson end | "inputs." + .)
    | join(".") + ".follows = \"nixpkgs\"";
  ({seen: {($root): []}, queue: [$root]}
    | until(.queue | length == 0;
        .queue[0] as $cur
        | .queue |= .[1:]
        | reduce ((($lock.nodes[$cur].inputs // {}) | keys)[]) as $in (.;
            resolve($lock.nodes[$cur].inputs[$in]; 0) as $next
            | if $next == null or (.seen | has($next)) then .
              else .seen[$next] = (.seen[$cur] + [$in]) | .queue += [$next]
              end))
    | .seen) as $reach
| [$reach | to_entries[] | select(.key != $root and ($lock.nodes[.key] | isnixpkgs)) | {node: .key, path: .value}]
| sort_by([(.path | length), (.path | join("/"))]) as $all
| (if $lock.nodes[$root].inputs.nixpkgs then resolve($lock.nodes[$root].inputs.nixpkgs; 0) else null end) as $rootown
| ($rootown // ($all[0].node // null)) as $own
| ($all | map(select(.node == $own))[] | "own\t\(.node)\t\(.path | join("/"))"),
  ($all | map(select(.node != $own))[] | "extra\t\(.node)\t\(.path | join("/"))\t\(.path | follows)")
