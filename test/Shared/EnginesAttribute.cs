using System.Reflection;
using Xunit.Sdk;

namespace Uring.Tests;

/// <summary>Runs a theory once per ring engine: io_uring, then epoll. Linked into each test project.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class EnginesAttribute : DataAttribute
{
    public override IEnumerable<object[]> GetData(MethodInfo testMethod) =>
    [
        [RingEngine.IoUring],
        [RingEngine.Epoll],
    ];
}
