# ComfyUI from source on the IPEX torch. The source is installed read-only;
# every writable directory (models, input, output, temp, user) is passed at
# run time, so the package works under DynamicUser with ProtectSystem=strict.
{
  lib,
  stdenvNoCC,
  fetchFromGitHub,
  makeWrapper,
  python,
  # Python packages of custom nodes' requirements, as `ps: [ ... ]`.
  extraPythonPackages ? (ps: [ ]),
}:
let
  pythonEnv = python.withPackages (
    ps:
    [
      ps.ipex
      ps.torch
      ps.torchvision
      ps.torchaudio
      ps.torchsde
      ps.einops
      ps.transformers
      ps.safetensors
      ps.accelerate
      ps.aiohttp
      ps.pyyaml
      ps.pillow
      ps.scipy
      ps.tqdm
      ps.psutil
      ps.kornia
      ps.spandrel
    ]
    ++ extraPythonPackages ps
  );
in
stdenvNoCC.mkDerivation {
  pname = "comfyui-ipex";
  version = "0-unstable-2024-06-12";

  src = fetchFromGitHub {
    owner = "comfyanonymous";
    repo = "ComfyUI";
    rev = "c8b5e08dc39171babb5d43f160cc04271591743e";
    hash = "sha256-CxRiJRtqDvmvdVk0bpMLngs18gUZR7Wv9np5xZDYgXw=";
  };

  nativeBuildInputs = [ makeWrapper ];

  # ComfyUI keeps its user directory next to its sources; let the service
  # point it at the state directory instead.
  postPatch = ''
    substituteInPlace folder_paths.py \
      --replace-fail 'os.path.join(os.path.dirname(os.path.realpath(__file__)), "user")' \
                     'os.environ.get("COMFYUI_USER_DIR", os.path.join(os.path.dirname(os.path.realpath(__file__)), "user"))'
  '';

  dontBuild = true;

  installPhase = ''
    runHook preInstall
    mkdir -p $out/share/comfyui $out/bin
    cp -r . $out/share/comfyui/
    makeWrapper ${pythonEnv}/bin/python $out/bin/comfyui \
      --add-flags "$out/share/comfyui/main.py" \
      --set-default PYTHONDONTWRITEBYTECODE 1
    runHook postInstall
  '';

  passthru = {
    inherit python pythonEnv;
  };

  meta = {
    description = "ComfyUI node-based diffusion GUI and API, on the Intel Extension for PyTorch";
    homepage = "https://github.com/comfyanonymous/ComfyUI";
    license = lib.licenses.gpl3Only;
    platforms = [ "x86_64-linux" ];
    mainProgram = "comfyui";
  };
}
