# Workstation with an Intel Arc GPU: Ollama and ComfyUI for one user.
{
  networking.hostName = "ipex-workstation";
  users.users.alice.isNormalUser = true;

  services.ipex = {
    enable = true;
    autoDetectHardware = true;
    devices = [
      "gpu"
      "cpu"
    ];
    optimization = "performance";
    gpu.generation = 12;
    users = [ "alice" ];
  };

  services.ollama-ipex = {
    enable = true;
    loadModels = [ "llama3.2:3b" ];
  };

  services.comfyui-ipex = {
    enable = true;
    modelsPath = "/var/lib/comfyui-ipex/models";
  };
}
