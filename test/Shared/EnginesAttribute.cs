using System.Reflection;
using Xunit.Sdk;

namespace Uring.Tests;

/// <summary>
/// Runs a theory once per ring engine: io_uring, then epoll. The theory's first parameter is an
/// enum with members named IoUring and Epoll (the transport's UringEngine, or a test's own). Linked
/// into each test project.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class EnginesAttribute : DataAttribute
{
    public override IEnumerable<object[]> GetData(MethodInfo testMethod)
    {
        Type parameter = testMethod.GetParameters()[0].ParameterType;
        Type engine = Nullable.GetUnderlyingType(parameter) ?? parameter;
        return
        [
            [Enum.Parse(engine, "IoUring")],
            [Enum.Parse(engine, "Epoll")],
        ];
    }
}
