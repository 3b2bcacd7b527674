# Discovers every buildable output of a flake in one evaluation.
#
# args (JSON): {
#   flake:    flake reference given to builtins.getFlake;
#   systems:  systems to select;
#   patterns: null or a list of POSIX regexes matched against the attribute path;
#   only:     null or a list of attribute paths to evaluate (isolation runs);
#   list:     true to return the attribute paths without evaluating them.
# }
# Each output is { attr, kind, system, drvSystem, ok, drvPath, outputs, features }:
# system is the attribute's system, drvSystem the derivation's own. Outputs
# of every system of the flake are listed: those of systems not selected
# come back unevaluated with `unselected = true`, and (when `only` is null)
# those the patterns do not match with `unwanted = true`, so the caller can
# report them and explain a selection that matches nothing.
# Evaluation errors that `builtins.tryEval` can catch are reported per output;
# others abort the evaluation and the caller isolates outputs one by one.
argsJSON:
let
  args = builtins.fromJSON argsJSON;
  flake = builtins.getFlake args.flake;
  inherit (builtins) attrNames concatMap filter hasAttr map elem;

  matches =
    attr: args.patterns == null || builtins.any (re: builtins.match re attr != null) args.patterns;
  inOnly = attr: args.only == null || elem attr args.only;

  entry = kind: system: attr: get: {
    inherit kind system attr get;
    selected = system == null || elem system args.systems;
  };

  # Attribute names of a set, or none when listing them fails (a system
  # whose set cannot be built here must not stop the others).
  namesOf =
    v:
    let
      r = builtins.tryEval (attrNames v);
    in
    if r.success then r.value else [ ];

  # packages, checks, devShells, apps: <kind>.<system>.<name>
  perSystem =
    kind: get:
    if hasAttr kind flake then
      concatMap (
        system:
        map (name: entry kind system "${kind}.${system}.${name}" (get flake.${kind}.${system}.${name})) (
          namesOf flake.${kind}.${system}
        )
      ) (namesOf flake.${kind})
    else
      [ ];

  # formatter.<system>
  formatters =
    if hasAttr "formatter" flake then
      map (system: entry "formatter" system "formatter.${system}" (drv flake.formatter.${system})) (
        namesOf flake.formatter
      )
    else
      [ ];

  # nixosConfigurations.<name>.config.system.build.toplevel and
  # homeConfigurations.<name>.activationPackage: the system is read from the
  # derivation, so only selected systems are kept after evaluation.
  configurations =
    kind: path:
    if hasAttr kind flake then
      map (name: entry kind null "${kind}.${name}.${path}" (drv (select flake.${kind}.${name} path))) (
        attrNames flake.${kind}
      )
    else
      [ ];
  select =
    v: path: builtins.foldl' (acc: p: acc.${p}) v (filter builtins.isString (builtins.split "\\." path));

  isDrv = v: builtins.isAttrs v && (v.type or null) == "derivation";

  drv =
    v:
    if isDrv v then
      let
        outs = v.outputs or [ "out" ];
      in
      {
        drvPath = v.drvPath;
        system = v.system;
        outputs = builtins.listToAttrs (
          map (o: {
            name = o;
            value = v.${o}.outPath;
          }) outs
        );
        features = v.requiredSystemFeatures or [ ];
      }
    else
      throw "not a derivation";

  # apps.<system>.<name>: the derivation that provides the app's program.
  app =
    v:
    let
      ctx = builtins.getContext v.program;
      drvs = filter (p: builtins.match ".*\\.drv" p != null) (attrNames ctx);
      out = builtins.match "(${builtins.storeDir}/[^/]+).*" (builtins.unsafeDiscardStringContext v.program);
    in
    if v.type or null != "app" then
      throw "not an app (type = \"app\" is missing)"
    else if drvs == [ ] || out == null then
      throw "the app's program ${v.program} is not inside a derivation's output"
    else
      {
        drvPath = builtins.head drvs;
        system = null;
        outputs = builtins.listToAttrs (
          map (o: {
            name = o;
            value = builtins.unsafeDiscardStringContext (builtins.head out);
          }) ctx.${builtins.head drvs}.outputs
        );
        features = [ ];
      };

  entries = filter (e: inOnly e.attr) (
    perSystem "packages" drv
    ++ perSystem "checks" drv
    ++ perSystem "devShells" drv
    ++ formatters
    ++ perSystem "apps" app
    ++ configurations "nixosConfigurations" "config.system.build.toplevel"
    ++ configurations "homeConfigurations" "activationPackage"
  );

  evaluate =
    e:
    let
      r = builtins.tryEval (builtins.deepSeq e.get e.get);
    in
    {
      inherit (e) attr kind;
      ok = r.success;
    }
    // (
      if r.success then
        r.value
        // {
          drvSystem = r.value.system;
          system = if e.system != null then e.system else r.value.system;
        }
      else
        { system = e.system; }
    );
  result =
    e:
    if !(matches e.attr) then
      {
        inherit (e) attr kind system;
        unwanted = true;
      }
    else if !e.selected then
      {
        inherit (e) attr kind system;
        unselected = true;
      }
    else
      evaluate e;
in
if args.list or false then
  map (e: {
    inherit (e) attr kind system;
    unwanted = !(matches e.attr);
    unselected = !e.selected;
  }) entries
else
  map result entries
